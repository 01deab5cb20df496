# mote.compat_cpython: what mote.compat gives on CPython (MicroPython has it built in).
# Only mote.compat imports this, and only on CPython.
import time as _time


def const(x):
    return x


# Ticks wrap at 2**30 like a 32-bit MicroPython port, so wrap bugs show on the host.
_TICKS_PERIOD = 1 << 30
_TICKS_MASK = _TICKS_PERIOD - 1
_TICKS_HALF = _TICKS_PERIOD >> 1


def ticks_ms():
    return int(_time.monotonic() * 1000) & _TICKS_MASK


def ticks_add(t, delta):
    return (t + delta) & _TICKS_MASK


def ticks_diff(a, b):
    return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF


def sleep_ms(ms):
    if ms > 0:
        _time.sleep(ms / 1000)


def _again(e):
    # Would block: nothing to read or no room to write yet, or (ssl.SSLWantReadError /
    # SSLWantWriteError) the TLS layer needs another round.
    return isinstance(e, (BlockingIOError, InterruptedError)) or type(e).__name__ in _SSL_WANT


def read_some(sock, mv, n):
    """Read up to n bytes into mv[0:n]. None: nothing yet; 0: peer closed; else count."""
    try:
        return sock.recv_into(mv, n)
    except OSError as e:
        if _again(e):
            return None
        raise


def write_some(sock, buf, off, n):
    """Write up to n bytes of buf from off. None: would block; else count written."""
    try:
        return sock.send(memoryview(buf)[off : off + n])
    except OSError as e:
        if _again(e):
            return None
        raise


def wait_io(poller, timeout_ms):
    """Wait up to timeout_ms for a registered event: its mask, 0 if none fired."""
    for _, ev in poller.poll(timeout_ms):
        return ev
    return 0


_SSL_WANT = ("SSLWantReadError", "SSLWantWriteError")


def cert_chain(ctx, cert, key):
    """ctx.load_cert_chain from PEM text: umqtt's ssl_params pass the data, CPython's ssl
    reads files."""
    import os
    import tempfile

    paths = []
    try:
        for text in (cert, key):
            fd, path = tempfile.mkstemp(suffix=".pem")
            paths.append(path)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        ctx.load_cert_chain(paths[0], paths[1])
    finally:
        for path in paths:
            os.unlink(path)
