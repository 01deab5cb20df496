"""Type-check lib/hal, boards/ and lib/mote against the ESP32 MicroPython stubs.

The stubs (PyPI micropython-esp32-stubs, pinned in requirements/tools.txt) install their
.pyi files loose into site-packages, without the py.typed marker mypy needs to trust them,
and mypy refuses site-packages on MYPYPATH. So this copies the files the wheel's RECORD
lists into build/typecheck/stubs, points MYPYPATH there and uses the stubs' own stdlib
(micropython-stdlib-stubs) as typeshed, so a call that the ESP32 port lacks is an error.
Usage: python tools/typecheck.py [paths...]   (default: lib/mote lib/hal boards)
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUBS = "micropython_esp32_stubs"
STDLIB = "micropython_stdlib_stubs"
DEFAULT = ["lib/mote", "lib/hal", "boards"]
# compat's CPython half never runs on a board: the stubs do not describe its stdlib.
CPYTHON_ONLY = ("compat_cpython.py",)
# Board files are loaded one at a time onto sys.path as `board`; checking them together
# needs each to be its own module, which --explicit-package-bases gives by path.
MYPY_FLAGS = [
    "--no-incremental",
    "--explicit-package-bases",
    "--check-untyped-defs",
    "--no-error-summary",
    "--hide-error-context",
    "--show-error-codes",
    # compat.py branches on MICROPYTHON: check the MicroPython side, the one the stubs
    # describe (the CPython side is exercised by the host tests).
    "--always-true=MICROPYTHON",
    # mote.client declares, for the checker only, what mote.link sets on the client.
    "--always-true=_TYPING",
    # Report each file once, under the path that lists it (hal imports mote.compat).
    "--follow-imports=silent",
]


def _dist(site, name):
    found = glob.glob(os.path.join(site, name + "-*.dist-info"))
    return found[0] if found else None


def copy_stubs(site, out):
    """Copy the .pyi files of the ESP32 stubs wheel (and the _mpy_shed helpers of the
    stdlib stubs they import) into out; returns the ESP32 stubs' version or None."""
    info = _dist(site, STUBS)
    std = _dist(site, STDLIB)
    if not info or not std:
        return None
    if os.path.isdir(out):
        shutil.rmtree(out)
    for dist in (info, std):
        with open(os.path.join(dist, "RECORD")) as f:
            for line in f:
                rel = line.split(",")[0]
                if rel.endswith(".pyi") and not rel.startswith("stdlib/"):
                    dst = os.path.join(out, rel)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copyfile(os.path.join(site, rel), dst)
    return os.path.basename(info)[len(STUBS) + 1 : -len(".dist-info")]


def ours(text, cwd, stubs_dir):
    """mypy's error and note lines about our files: the stubs have a few errors of their
    own (overlapping overloads, names they do not define), which are not ours to fix."""
    keep = []
    for line in text.splitlines():
        if ": error:" not in line and ": note:" not in line:
            continue
        where = os.path.abspath(os.path.join(cwd, line.split(":", 1)[0]))
        if not where.startswith(stubs_dir):
            keep.append(line)
    return keep


def main():
    paths = sys.argv[1:] or DEFAULT
    site = sysconfig.get_paths()["purelib"]
    out = os.path.join(ROOT, "build", "typecheck", "stubs")
    version = copy_stubs(site, out)
    mypy = os.path.join(os.path.dirname(sys.executable), "mypy")
    if version is None or not os.path.exists(mypy):
        print(
            "typecheck: FAIL: mypy or micropython-esp32-stubs missing "
            "(pip install -r requirements/tools.txt)"
        )
        return 2
    env = dict(os.environ, MYPYPATH=out + os.pathsep + os.path.join(ROOT, "lib"))
    failed = []
    errors = 0
    for path in paths:
        target = os.path.join(ROOT, path)
        files = []
        if os.path.isdir(target):
            for dirpath, _, names in os.walk(target):
                files += [
                    os.path.join(dirpath, n)
                    for n in sorted(names)
                    if n.endswith(".py") and n not in CPYTHON_ONLY
                ]
        else:
            files.append(target)
        if path == "boards":
            groups = [[f] for f in sorted(files)]  # every board file is a module `board`
        else:
            groups = [sorted(files)]
        print(
            "typecheck: %s (%d files) against micropython-esp32-stubs %s"
            % (path, len(files), version),
            flush=True,
        )
        for group in groups:
            cmd = [mypy, "--custom-typeshed-dir", site] + MYPY_FLAGS + group
            cwd = os.path.join(ROOT, "lib") if path.startswith("lib") else ROOT
            proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
            lines = ours(proc.stdout + proc.stderr, cwd, out)
            if proc.returncode > 1:  # 1 is "errors found"; more is a crash or a usage error
                lines = lines or [(proc.stdout + proc.stderr).strip() or "mypy crashed"]
            if lines:
                if path not in failed:
                    failed.append(path)
                errors += sum(1 for k in lines if ": error:" in k)
                print("\n".join(lines))
    for path in paths:
        print("typecheck: %-9s %s" % (path, "FAIL" if path in failed else "ok"))
    print("typecheck: %s (%d errors)" % ("FAIL" if failed else "passed", errors))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
