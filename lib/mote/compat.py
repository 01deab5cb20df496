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
        """Wait up to timeout_ms for a registered event: its mask (POLLIN 1, POLLOUT 4,
        POLLERR 8, POLLHUP 16), 0 if none fired. No allocation: ipoll reuses one tuple,
        which is never kept."""
        for _, ev in poller.ipoll(timeout_ms):
            return ev
        return 0

else:
    # CPython's half lives in its own module, so a board never loads its code.
    from mote.compat_cpython import (  # noqa: F401
        const,
        read_some,
        sleep_ms,
        ticks_add,
        ticks_diff,
        ticks_ms,
        wait_io,
        write_some,
    )


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


def quickack(sock):
    """Acknowledge what was received at once instead of after the delayed-ACK timer
    (Linux TCP_QUICKACK = 12; not sticky, so called per wait). A broker that keeps
    Nagle's algorithm holds its second and later acknowledgements until then: about 40 ms
    on Linux. Returns False where the stack has no such option (lwIP): then stop calling."""
    try:
        sock.setsockopt(6, 12, 1)
        return True
    except (OSError, AttributeError):
        return False


def new_poller(sock, mask=1):
    """A poller for sock alone, registered for mask (default POLLIN)."""
    import select

    p = select.poll()
    p.register(sock, mask)
    if MICROPYTHON:
        # ipoll() allocates its reusable result tuple on the first call: do that here, so
        # the waits after connect() allocate nothing.
        for _ in p.ipoll(0):
            pass
    return p
