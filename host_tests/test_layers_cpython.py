# DESIGN.md's layers: each module imports only from the layers above it (compat, codec,
# topic, session, client, aio, then hal, boards, firmware). Read from the sources with ast,
# imports inside functions included (the lazy ones are imports all the same).
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Rank of each module (prefix); a module may import modules of its own rank or above.
# Modules that DESIGN.md does not name sit with the layer whose half they are: compat_cpython,
# compat_aio and tls are compat's; snapshot is the session's (it reads a Session); stats and
# the package's facade (`from mote import MQTTClient`) are the client's.
RANKS = (
    ("mote.compat", 0),
    ("mote.compat_cpython", 0),
    ("mote.compat_aio", 0),
    ("mote.tls", 0),
    ("mote.codec", 1),
    ("mote.codec_setup", 1),
    ("mote.topic", 2),
    ("mote.session", 3),
    ("mote.session_setup", 3),
    ("mote.snapshot", 3),
    ("mote.client", 4),
    ("mote.client_setup", 4),
    ("mote.stats", 4),
    ("mote.link", 4),
    ("mote", 4),
    ("mote.aio", 5),
    ("hal", 6),
    ("board", 7),
    ("app", 8),
    ("main", 8),
    ("boot", 8),
)


def rank(name):
    """The layer of a repository module, or None for anything else (the standard library,
    MicroPython's own modules)."""
    best = None
    for prefix, r in RANKS:
        if name == prefix or name.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, r)
    return None if best is None else best[1]


def imported(source, package_dirs):
    """Module names a source imports. `from pkg import x` names pkg.x when x is a module
    of pkg (a file in package_dirs[pkg]), else pkg."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            files = package_dirs.get(node.module)
            for a in node.names:
                if files and a.name + ".py" in files:
                    out.append(node.module + "." + a.name)
                else:
                    out.append(node.module)
    return out


def violations(modules, package_dirs):
    """[(importer, imported)] where a module imports from a layer below its own."""
    bad = []
    for name, source in modules.items():
        mine = rank(name)
        for target in imported(source, package_dirs):
            theirs = rank(target)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append((name, target))
    return bad


def repository_modules():
    modules, package_dirs = {}, {}
    for pkg_root, pkg in (("lib/mote", "mote"), ("lib/hal", "hal"), ("firmware/app", "app")):
        d = os.path.join(ROOT, pkg_root)
        files = sorted(n for n in os.listdir(d) if n.endswith(".py"))
        package_dirs[pkg] = set(files)
        for n in files:
            name = pkg if n == "__init__.py" else pkg + "." + n[:-3]
            with open(os.path.join(d, n)) as f:
                modules[name] = f.read()
    for path, name in (("firmware/main.py", "main"), ("firmware/boot.py", "boot")):
        with open(os.path.join(ROOT, path)) as f:
            modules[name] = f.read()
    for board in sorted(os.listdir(os.path.join(ROOT, "boards"))):
        path = os.path.join(ROOT, "boards", board, "board.py")
        if os.path.exists(path):
            with open(path) as f:
                modules["board"] = f.read()
            assert not violations({"board": modules.pop("board")}, package_dirs), board
    return modules, package_dirs


def test_every_module_imports_only_from_the_layers_above_it():
    modules, package_dirs = repository_modules()
    assert len(modules) > 30, sorted(modules)  # the walk found the tree
    assert violations(modules, package_dirs) == []


def test_the_check_finds_an_import_from_below():
    dirs = {"mote": {"session.py", "codec.py"}}
    code = "from mote import session\n\ndef f():\n    import app.node\n"
    assert violations({"mote.codec": code}, dirs) == [
        ("mote.codec", "mote.session"),
        ("mote.codec", "app.node"),
    ]
    assert violations({"mote.session": "from mote import codec\n"}, dirs) == []
