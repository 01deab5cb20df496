# Run one client scenario on either interpreter (CPython-only helper for broker tests).
# The scenario is Python source that runs unchanged on CPython and the MicroPython unix
# port, with lib/ and host_tests/ on sys.path and a PARAMS dict; it reports by printing.
import os
import subprocess

import mpclient
import pytest

import support

# Every broker scenario runs on these two. The 32-bit VM ("micropython32": the ESP32's int
# range, ticks period and object sizes) is a third choice for the tests that need it (the
# memory contract, the ticks wrap) rather than a third run of every scenario (time budget).
INTERPRETERS = ["cpython", "micropython"]
ALL_INTERPRETERS = INTERPRETERS + ["micropython32"]


def command(interp, script, heapsize=None):
    """argv for script on interp (MicroPython: heapsize, default the suite's). A missing
    interpreter skips the test (fails it under CI=true)."""
    reason = mpclient.missing_reason(interp)
    if reason:
        support.missing_tool(reason)
    return mpclient.interpreter_command(interp, script, heapsize)


def run(interp, code, params=None, timeout=60.0, env=None, heapsize=None):
    """Run code on interp (env: extra environment variables; heapsize: MicroPython's -X
    heapsize); returns (returncode, output). Kills it and fails the test with the output
    so far after timeout seconds."""
    script = mpclient._script(code, params)
    try:
        return mpclient.run_command(command(interp, script, heapsize), env, timeout)
    except TimeoutError as e:
        pytest.fail("%s scenario hung: %s" % (interp, e))
    finally:
        os.unlink(script)


def spawn(interp, code, params=None, env=None):
    """Start code on interp in the background: a Popen with stdout as text lines."""
    script = mpclient._script(code, params)
    return subprocess.Popen(
        command(interp, script),
        cwd=mpclient.ROOT,
        env=mpclient._env(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )


def interp_param(interps=INTERPRETERS):
    """pytest.mark.parametrize over the interpreters (default: CPython and the 64-bit
    MicroPython; ALL_INTERPRETERS adds the 32-bit VM)."""
    return pytest.mark.parametrize("interp", interps)


class Process:
    """A scenario running in the background on interp (env: extra environment variables):
    expect(text) waits for an output line containing text, write_line() feeds its stdin,
    wait()/kill() end it, text() is the output so far. Use as a context manager (kills it
    on exit)."""

    def __init__(self, interp, code, params=None, env=None):
        import queue
        import threading

        self.interp = interp
        self.proc = spawn(interp, code, params, env)
        self.output = []
        self._q = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            self._q.put(line)
        self._q.put(None)

    def expect(self, text, timeout=10.0):
        """The first new line containing text; pytest.fail (with the output) if the
        scenario ends or stays silent about it for timeout seconds."""
        import queue
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._q.get(timeout=max(left, 0.001))
            except queue.Empty:
                pytest.fail("%s: no %r in %.0f s:\n%s" % (self.interp, text, timeout, self.text()))
            if line is None:
                self._q.put(None)
                pytest.fail("%s: ended before %r:\n%s" % (self.interp, text, self.text()))
            if text in line:
                return line

    def write_line(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def text(self):
        return "\n".join(self.output)

    def wait(self, timeout=10.0):
        """Wait for the exit; returns (returncode, whole output). Fails the test on timeout."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("%s scenario hung:\n%s" % (self.interp, self.text()))
        self._reader.join(5)
        return rc, self.text()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


class Peer:
    """A paho-mqtt 2.x client on the other side (started, connected and looping).
    Received messages are (topic str, payload bytes, qos, retain) in self.inbox."""

    def __init__(self, host, port, client_id="", clean_session=True, timeout=5.0):
        import queue
        import threading

        import paho.mqtt.client as paho

        self.inbox = queue.Queue()
        self._acked = threading.Event()
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.c.on_message = lambda c, u, m: self.inbox.put((m.topic, m.payload, m.qos, m.retain))
        self.c.on_subscribe = lambda *a: self._acked.set()
        self.c.on_unsubscribe = lambda *a: self._acked.set()
        self.timeout = timeout
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()
        import time

        deadline = time.monotonic() + timeout
        while not self.c.is_connected():
            if time.monotonic() > deadline:
                raise TimeoutError("paho peer did not connect")
            time.sleep(0.005)

    def subscribe(self, topic, qos=2):
        self._acked.clear()
        self.c.subscribe(topic, qos)
        if not self._acked.wait(self.timeout):
            raise TimeoutError("no SUBACK for paho peer")

    def publish(self, topic, payload, qos=0, retain=False):
        """Publish and wait until the broker has it (PUBACK/PUBCOMP for QoS 1/2)."""
        info = self.c.publish(topic, payload, qos, retain)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise TimeoutError("paho publish not completed")

    def get(self, n, timeout=None):
        """The next n messages, in arrival order (fewer if they do not come in time)."""
        import queue
        import time

        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = []
        while len(out) < n:
            try:
                out.append(self.inbox.get(timeout=max(0.001, deadline - time.monotonic())))
            except queue.Empty:
                break
        return out

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
