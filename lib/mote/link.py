# mote.link: the client's connection machine (the client's half of layer 4), as functions
# of the MQTTClient they drive. mote.client imports it on demand (to connect, after a
# connection broke or to disconnect) and, on MicroPython, forgets it again
# once connected (a client is built by mote.client_setup, so a constructor does not load
# this): a connected client keeps only its per-message code in
# the heap (an imported .mpy module's code stays there while it is imported; its interned
# names stay for good). See mote.client's opening comment for the states.
import errno

from mote import compat
from mote.codec import MQTTException, ProtocolError
from mote.compat import const, read_some, sleep_ms, ticks_add, ticks_diff, ticks_ms

_DOWN = const(0)
_TCP = const(1)
_MQTT = const(2)
_UP = const(3)
_WAIT_SLICE_MS = const(1000)
_POLL_W = const(4)
_POLL_RW = const(5)
_POLL_FAIL = const(24)
_LINGER_MS = const(250)
_STRIKES = const(3)
_STRIKE_MS = const(2000)
_N_CONN_FAIL = const(0)
_N_LOST = const(1)
_N_PROTOCOL = const(2)
_N_POISON = const(7)


def connack(c):
    # The CONNACK (MQTTClient._dispatch): up before any message that came in the same read
    # is dispatched.
    s = c._s
    if s.connack_rc:
        raise MQTTException(s.connack_rc)
    c._cs = _UP
    c._up_at = ticks_ms()
    c._ever = True
    c._fails = 0
    if c._auto:
        c.reconnects += 1
    # Subscriptions: the broker kept them with the session; else the client's own reconnect
    # renews them, and a connect() by the application starts without any (MQTT-3.1.2-6;
    # umqtt's behaviour).
    if s.session_present:
        return
    if not c._auto:
        c._subs = []
        return
    for sub in c._subs:
        sub[2] = 1
    c._renew = bool(c._subs)
    c._rs = None
    c._rs_pid = 0
    c._rs_at = c._up_at


def connect(c, clean_session, timeout):
    # MQTTClient.connect(): each server once, under one deadline each.
    c._clean = clean_session
    if timeout is not None:
        c.timeout_ms = int(timeout * 1000)
    if c._auto != 2:
        c._auto = 0
    c._close()
    err = Exception("no server")
    for _ in range(len(c._servers)):
        try:
            begin(c)
            while c._cs != _UP:
                step(c, min(max(1, ticks_diff(c._deadline, ticks_ms())), _WAIT_SLICE_MS))
            return c._s.session_present
        except (OSError, MQTTException, ValueError) as e:
            if c._cs == _UP:
                # Connected, and lost within the same read (a protocol error right after
                # CONNACK): handled like any loss after connect().
                if not isinstance(e, (OSError, ProtocolError)):
                    raise
                lost(c, e)
                return c._s.session_present
            c._close()
            if isinstance(e, MQTTException) and not isinstance(e, ProtocolError):
                raise  # refused by the broker: say so, do not try another
            err = e
        c._srv = (c._srv + 1) % len(c._servers)
        c._addr = None
    raise err


def begin(c):
    # Start an attempt at server _srv: the name lookup (unless an address is kept from the
    # last attempt), then a non-blocking TCP connect.
    import socket

    host, port = c._servers[c._srv]
    addr = c._addr
    if addr is None:
        addr = c._addr = compat.resolve(host, port or (8883 if c.ssl else 1883))
    c._deadline = ticks_add(ticks_ms(), c.timeout_ms)
    sock = c.sock = socket.socket()
    c._cs = _TCP
    sock.setblocking(False)
    try:
        sock.connect(addr)
    except OSError as e:
        if e.args[0] != errno.EINPROGRESS and e.args[0] != errno.EAGAIN:
            c._addr = None
            raise
    c._poller = compat.new_poller(sock, _POLL_W)
    c._want_write = True


def step(c, wait_ms):
    # Advance the attempt under way, waiting at most wait_ms for the socket. Raises on any
    # failure, and OSError(ETIMEDOUT) once past the attempt's deadline.
    if ticks_diff(ticks_ms(), c._deadline) >= 0:
        if c._cs == _TCP:
            c._addr = None
        raise OSError(errno.ETIMEDOUT, "connect timed out")
    if c._cs != _TCP:
        c._round(wait_ms)
        return
    ev = compat.wait_io(c._poller, wait_ms)
    if not ev:
        return
    sock = c.sock
    if ev & _POLL_FAIL:
        addr = c._addr
        c._addr = None  # look the name up again next time
        sock.connect(addr)  # raises why, on the ports that can tell
        raise OSError(errno.ECONNREFUSED)
    # TCP is up: then TLS (its handshake runs inside the writes of CONNECT) and MQTT.
    if c._nodelay is not False:
        compat.set_nodelay(sock)
    c._nagle = c._nodelay is False
    c._w_rx = 0
    if c.ssl:
        from mote.tls import wrap

        host = c._servers[c._srv][0]
        left = ticks_diff(c._deadline, ticks_ms())
        sock, c._warned = wrap(c.ssl, c.ssl_params, sock, host, c._warned, left)
        c.sock = sock
    c._poller = compat.new_poller(sock, _POLL_RW)
    s = c._s
    s.set_connect(
        c.client_id,
        c._clean,
        c.keepalive,
        c.lw_topic,
        c.lw_msg,
        c.lw_qos,
        c.lw_retain,
        c.user,
        c.pswd,
    )
    s.connect(ticks_ms())
    c._cs = _MQTT
    c._write()


def disconnect(c):
    # MQTTClient.disconnect().
    if c._cs == _UP:
        s = c._s
        s.disconnect()
        try:
            c._write_all(c.timeout_ms)
            # The broker closes the connection once it has handled DISCONNECT
            # (MQTT-3.14.4): wait for that, briefly, discarding what still comes in. Then a
            # connect() that follows cannot overtake the DISCONNECT (a broker that takes
            # the client id over first publishes the will), and close() sends FIN, not the
            # RST that unread input causes (an RST discards data not yet transmitted, the
            # DISCONNECT included).
            t0 = ticks_ms()
            left = _LINGER_MS
            c._interest(False)
            while left > 0:
                compat.wait_io(c._poller, left)
                if read_some(c.sock, s.rx_mv, len(s.rx_buf)) == 0:
                    break
                left = _LINGER_MS - ticks_diff(ticks_ms(), t0)
        except OSError:
            pass
    c._ever = False
    c._close()


def reconnect(c):
    # umqtt.robust's reconnect(): retry with backoff until connected.
    while True:
        try:
            return connect_auto(c)
        except (OSError, MQTTException, ValueError) as e:
            failed(c, e)
            sleep_ms(ticks_diff(c._next_try, ticks_ms()))


def connect_auto(c):
    c._auto = 2
    try:
        return c.connect(c._clean)
    finally:
        c._auto = 0


def delay_ms(c):
    # Exponential backoff with jitter (50..100 % of the step), capped.
    step = c._backoff_ms << min(c._fails, 16)
    if step > c._backoff_max_ms:
        step = c._backoff_max_ms
    x = c._rng
    x ^= (x << 13) & 0x3FFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0x3FFFFFFF
    c._rng = x or 1
    return step // 2 + x % (step // 2 + 1)


def lost(c, e):
    # The connection broke: keep the session; raise unless reconnect will handle it.
    if isinstance(e, ProtocolError):
        c._n[_N_PROTOCOL] += 1
    c._n[_N_LOST] += 1
    # A connection that ended within _STRIKE_MS of its CONNACK, with nothing else received
    # on it, while the oldest unfinished message was sent on it and never acknowledged is a
    # strike against that message: the broker refuses it (too large for it, a QoS it does
    # not allow...), and resending it forever would hold back every message behind it.
    # After _STRIKES in a row it leaves the outbox (counted in stats(), printed). Any packet
    # from the broker after the CONNACK (an ack, a message, a PINGRESP), or a link that
    # fails later, resets the count: a flaky link that cuts connections quickly must never
    # cost a message.
    pid = c._s.head_sent() if ticks_diff(ticks_ms(), c._up_at) < _STRIKE_MS else 0
    if pid != c._poison_pid:
        c._poison_pid = pid
        c._strikes = 0
    if pid:
        c._strikes += 1
        if c._strikes >= _STRIKES:
            c._s.drop_head()
            c._n[_N_POISON] += 1
            c._strikes = 0
            print("mote: the broker closes the connection on message", pid, "- dropped")
    c._close()
    if not (c._reconnect and c._ever):
        raise e
    if c.DEBUG:
        print("mote: connection lost:", repr(e))
    c._next_try = ticks_ms()  # first retry at once


def advance(c, wait_ms):
    # The connection is not up: start an attempt when one is due, or advance the one under
    # way by one step. An attempt that fails counts and backs off.
    if c._cs == _DOWN:
        if not (c._reconnect and c._ever) or c._auto == 2:
            return  # (2: a subclass's connect() publishes: it is the attempt)
        left = ticks_diff(c._next_try, ticks_ms())
        if left > 0:
            if wait_ms > 0:
                sleep_ms(min(wait_ms, left))
            return
        if c._own:
            # A subclass's connect() runs whole, as umqtt.robust's reconnect does.
            try:
                connect_auto(c)
            except (OSError, MQTTException, ValueError) as e:
                failed(c, e)
            return
        c._auto = 1
    try:
        if c._cs == _DOWN:
            begin(c)
        step(c, wait_ms)
    except (OSError, MQTTException, ValueError) as e:
        if c._cs == _UP:
            if not isinstance(e, (OSError, ProtocolError)):
                raise  # the application's callback raised: not a connection failure
            lost(c, e)
        else:
            c._close()
            failed(c, e)
    if c._cs != _TCP and c._cs != _MQTT:
        c._auto = 0


def failed(c, e):
    # An automatic attempt failed: count, rotate servers, wait before the next one.
    c._n[_N_CONN_FAIL] += 1
    c._fails += 1
    if c.DEBUG:
        print("mote: connect failed:", repr(e))
    n = len(c._servers)
    if n > 1:
        c._srv = (c._srv + 1) % n
        c._addr = None
    c._next_try = ticks_add(ticks_ms(), delay_ms(c))
