# The MicroPython test runner: imports each host_tests/test_*.py that both interpreters
# run (files ending in _cpython.py are CPython-only) and calls every test_ function.
# Usage: micropython host_tests/mprun.py [-v] [module-or-module::test ...]
import os
import sys

HERE = __file__.rpartition("/")[0] or "."
ROOT = HERE.rpartition("/")[0] or "."
if HERE == ".":
    ROOT = ".."
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT + "/lib")
sys.path.insert(0, ROOT)

import support  # noqa: E402


def _modules(wanted):
    names = []
    for name in sorted(os.listdir(HERE)):
        if name.startswith("test_") and name.endswith(".py") and not name.endswith("_cpython.py"):
            names.append(name[:-3])
    if wanted:
        names = [n for n in names if n in wanted]
    return names


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    verbose = "-v" in sys.argv
    wanted_mods = {}
    for a in args:
        mod, _, test = a.replace(".py", "").rpartition("/")[2].partition("::")
        wanted_mods.setdefault(mod, []).append(test)
    passed = failed = skipped = 0
    for modname in _modules(wanted_mods):
        try:
            mod = __import__(modname)
        except Exception as e:  # a module that cannot import fails as one test
            print("FAIL", modname, "(import)")
            sys.print_exception(e)
            failed += 1
            continue
        tests = sorted(n for n in dir(mod) if n.startswith("test_"))
        only = [t for t in wanted_mods.get(modname, ()) if t]
        for name in tests:
            if only and name not in only:
                continue
            fn = getattr(mod, name)
            try:
                fn()
            except support.SkipTest as e:
                skipped += 1
                print("SKIP", modname + "::" + name, "-", e.args[0] if e.args else "")
                continue
            except Exception as e:
                failed += 1
                print("FAIL", modname + "::" + name)
                sys.print_exception(e)
                continue
            passed += 1
            if verbose:
                print("ok  ", modname + "::" + name)
    # The 32-bit VM (an ESP32's int range) says so: tools/runtests.py runs both.
    name = "micropython32" if sys.maxsize < (1 << 32) else "micropython"
    print("%s: %d passed, %d failed, %d skipped" % (name, passed, failed, skipped))
    sys.exit(1 if failed else 0)


main()
