# mote.compat: the one module that knows which interpreter it runs on.
# Everything else imports const, ticks_*, sleep_ms and the stream helpers from here.
import sys

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    from time import sleep_ms, ticks_add, ticks_diff, ticks_ms

    from micropython import const

    # errno values that mean "try again": 11 on Linux and on the ESP32's lwIP.
    _EAGAIN = const(11)

    def read_some(sock, mv, n):
        """Read up to n bytes into mv[0:n]. None: nothing yet; 0: peer closed; else count.

        Allocates nothing (readinto with a length)."""
        try:
            return sock.readinto(mv, n)
        except OSError as e:
            if e.errno == _EAGAIN:
                return None
            raise

    def write_some(sock, buf, off, n):
        """Write up to n bytes of buf from off. None or 0: would block; else count written.

        Allocates nothing (stream write with offset and length)."""
        try:
            return sock.write(buf, off, n)
        except OSError as e:
            if e.errno == _EAGAIN:
                return None
            raise

    def wait_io(poller, timeout_ms):
        """Wait up to timeout_ms for a registered event; True if one fired. No allocation:
        ipoll reuses one tuple, which is never kept."""
        for _ in poller.ipoll(timeout_ms):
            return True
        return False

else:
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

    def read_some(sock, mv, n):
        """Read up to n bytes into mv[0:n]. None: nothing yet; 0: peer closed; else count."""
        try:
            return sock.recv_into(mv, n)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            # ssl.SSLWantReadError / SSLWantWriteError: the TLS layer needs another round.
            if type(e).__name__ in _SSL_WANT:
                return None
            raise

    def write_some(sock, buf, off, n):
        """Write up to n bytes of buf from off. None: would block; else count written."""
        try:
            return sock.send(memoryview(buf)[off : off + n])
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            if type(e).__name__ in _SSL_WANT:
                return None
            raise

    def wait_io(poller, timeout_ms):
        """Wait up to timeout_ms for a registered event; True if one fired."""
        return bool(poller.poll(timeout_ms))

    _SSL_WANT = ("SSLWantReadError", "SSLWantWriteError")


# Sockets and TLS: imported on first use, so codec/session users never load them. -------


def resolve(host, port):
    """The socket address for host:port (DNS at connect time only)."""
    import socket

    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]


def set_nodelay(sock):
    """Disable TCP's small-packet delay: mote writes each packet in one call, so waiting
    for more data only adds latency. Ports without the option keep the default."""
    import socket

    try:
        sock.setsockopt(getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1), 1)
    except (OSError, AttributeError):
        pass


def new_poller(sock):
    import select

    p = select.poll()
    p.register(sock, select.POLLIN)
    if MICROPYTHON:
        # ipoll() allocates its reusable result tuple on the first call: do that here, so
        # the waits after connect() allocate nothing.
        for _ in p.ipoll(0):
            pass
    return p


def poll_mask(want_write):
    import select

    return select.POLLIN | select.POLLOUT if want_write else select.POLLIN


def tls_context(params):
    """An SSL context from umqtt-style ssl_params: cafile/cadata (the CA to verify the
    server), certfile/keyfile (client certificate for mutual TLS). Returns (context,
    verified): verified is False when no CA was given and the server is not checked."""
    import ssl

    cafile = params.get("cafile")
    cadata = params.get("cadata")
    certfile = params.get("certfile")
    keyfile = params.get("keyfile")
    verified = bool(cafile or cadata)
    if MICROPYTHON:
        # mbedTLS here takes DER only, and verifies only with CERT_REQUIRED (its default
        # is CERT_NONE): PEM is converted, the mode set explicitly.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cafile:
            cadata = _read(cafile)
        if cadata:
            ctx.load_verify_locations(cadata=_der(cadata))
        if certfile:
            ctx.load_cert_chain(_der(_read(certfile)), _der(_read(keyfile or certfile)))
        # The ESP32 stubs lack verify_mode; the port has it (extmod's tls module).
        ctx.verify_mode = ssl.CERT_REQUIRED if verified else ssl.CERT_NONE  # type: ignore[attr-defined]
        return ctx, verified
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verified:
        if isinstance(cadata, (bytes, bytearray)) and not cadata.lstrip().startswith(b"-----"):
            ctx.load_verify_locations(cadata=bytes(cadata))  # DER
        else:
            if isinstance(cadata, (bytes, bytearray)):
                cadata = cadata.decode()
            ctx.load_verify_locations(cafile=cafile, cadata=cadata)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx, verified


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _der(data):
    # PEM (base64 between -----BEGIN/END----- lines) to DER; DER passes through.
    if isinstance(data, str):
        data = data.encode()
    if not data.lstrip().startswith(b"-----BEGIN"):
        return data
    import binascii

    body = b"".join(
        line for line in data.split(b"\n") if line.strip() and not line.startswith(b"-----")
    )
    return binascii.a2b_base64(body)


def tls_verifies(ctx):
    """Whether an SSL context checks the server's certificate."""
    import ssl

    try:
        return ctx.verify_mode != ssl.CERT_NONE
    except AttributeError:
        return True  # cannot tell: do not warn


def tls_wrap(ctx, sock, host):
    """Wrap a connected socket and complete the handshake (blocking, under the socket's
    timeout). host is sent as SNI and checked against the certificate when verifying."""
    return ctx.wrap_socket(sock, server_hostname=host)
