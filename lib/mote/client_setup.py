# mote.client_setup: MQTTClient.__init__'s body and the blocking subscribe/unsubscribe
# exchanges (the client's half of layer 4). Run once per client, or once per
# subscription: mote.client imports it for that and, on MicroPython, forgets it again
# right after (with mote.link and the set-up halves of codec and session), so its code
# does not stay in the heap. Neither constructing a client nor subscribing loads the
# connection machine (mote.link): the heap a board needs at start-up, and while it
# subscribes after connecting, stays small.
import errno

from mote.codec import MQTTException, ProtocolError
from mote.compat import const, ticks_diff, ticks_ms
from mote.session import Session
from mote.topic import validate_filter

_DOWN = const(0)  # mote.client's connection states
_UP = const(3)
_WAIT_SLICE_MS = const(1000)  # longest single poll while blocking
_SMALL_HEAP = const(262144)  # a heap under this (a plain ESP32's, a C3's) gets a 1 KB outbox


def init(
    c,
    client_id,
    server,
    port,
    user,
    password,
    keepalive,
    ssl,
    ssl_params,
    max_inflight,
    reconnect,
    rx_size,
    tx_size,
    outbox_size,
    qos2_in,
    zero_copy,
    timeout_ms,
    backoff_ms,
    backoff_max_ms,
    nodelay,
):
    # MQTTClient.__init__ (run once: its code need not stay in the heap).
    if not 0 <= keepalive <= 65535:
        raise ValueError("keepalive out of range", keepalive)
    if ssl_params:
        from mote.tls import check

        check(ssl_params)
    c.client_id = client_id
    c.server = server
    c.port = port
    c.user = user
    c.pswd = password
    c.keepalive = keepalive
    c.ssl = ssl
    c.ssl_params = ssl_params
    c.cb = None
    c.lw_topic = None
    c.lw_msg = None
    c.lw_qos = 0
    c.lw_retain = False
    c.sock = None
    c.zero_copy = zero_copy
    c.timeout_ms = timeout_ms
    c._reconnect = reconnect
    c._backoff_ms = backoff_ms
    c._backoff_max_ms = backoff_max_ms
    c._nodelay = nodelay
    # nodelay=None (adaptive): TCP_NODELAY while anything awaits an answer, Nagle's
    # algorithm while only QoS 0 streams (see _nagle_set's callers).
    c._adapt = nodelay is None
    c._nagle = False  # Nagle's algorithm is on (TCP_NODELAY off) on this socket
    c._w_rx = 0  # writes since data last came in: a burst, when 2 or more
    c._quickack = True  # until the stack says it has no TCP_QUICKACK
    if not outbox_size:
        outbox_size = 2048
        try:
            import gc

            if gc.mem_free() + gc.mem_alloc() < _SMALL_HEAP:  # (CPython's gc has neither)
                outbox_size = 1024
        except AttributeError:
            pass
    c._s = Session(max_inflight, outbox_size, rx_size, tx_size, qos2_in)
    c._poller = None
    c._want_write = False
    c._servers = []  # (host, port) pairs, tried in turn (failover)
    for item in server if isinstance(server, (list, tuple)) else [server]:
        if isinstance(item, (list, tuple)):
            c._servers.append((item[0], item[1]))
        else:
            c._servers.append((item, port))
    if not c._servers:
        raise ValueError("no server", server)
    c._srv = 0
    c._addr = None  # the resolved address of server _srv, kept between attempts
    c._cs = _DOWN
    c._deadline = ticks_ms()  # when the attempt under way gives up
    # Who started the attempt under way: 0 the application's connect(), 1 the
    # client's own reconnect, 2 the same through connect() (reconnect(), subclasses).
    c._auto = 0
    # A subclass that overrides connect() (umqtt.robust's examples do) gets it called
    # for every reconnect, as umqtt.robust calls it.
    from mote.client import MQTTClient

    c._own = type(c).connect is not MQTTClient.connect
    c._clean = True
    c._ever = False  # a connect() succeeded: reconnect may run
    c._fails = 0
    c._next_try = ticks_ms()
    # Backoff jitter from the hardware's random source: a fleet restarted by one
    # outage must not reconnect in lockstep (ticks at construction are nearly equal).
    try:
        from os import urandom

        b = urandom(4)
        x = b[0] | (b[1] << 8) | (b[2] << 16) | ((b[3] & 0x3F) << 24)
    except ImportError:
        x = ticks_diff(ticks_ms(), 0) ^ 0x5DEECE
    c._rng = x or 1
    # [filter bytes, qos, renew] per subscription; renew: 0 done, 1 to send again on
    # this connection, 2 refused (retried at _rs_at)
    c._subs = []
    c._renew = False  # some entry of _subs has renew != 0
    c._rs = None  # the entry whose SUBSCRIBE awaits its SUBACK
    c._rs_pid = 0
    c._rs_at = c._deadline
    c._granted = 0
    c._ack_pid = 0
    c._handled = 0
    c._depth = 0  # > 0 while a callback runs: nothing may dispatch then
    c._warned = False
    c._strikes = 0  # connections lost right after sending _poison_pid
    c._poison_pid = 0
    c._up_at = c._deadline
    # message details for the callback, set before each call
    c.msg_qos = 0
    c.msg_retain = False
    c.msg_dup = False
    # counters for stats() (indexed by the _N_* constants): connect failures,
    # connections lost, protocol errors, published, received, QoS 0 dropped offline,
    # subscriptions refused on renewal, poison messages dropped
    c._n = [0] * 8
    c.reconnects = 0  # automatic reconnects so far: read it without stats()' dict
    c._rtt_ms = -1


# Subscriptions: blocking exchanges -------------------------------------------------------


def subscribe(c, topic, qos):
    t = validate_filter(topic)
    if not 0 <= qos <= 2:
        raise ValueError("QoS must be 0, 1 or 2", qos)
    granted = retrying(c, t, qos)
    for sub in c._subs:
        if sub[0] == t:
            sub[1] = qos
            sub[2] = 0
            break
    else:
        c._subs.append([t, qos, 0])
    return granted


def unsubscribe(c, topic):
    t = validate_filter(topic)
    c._subs = [x for x in c._subs if x[0] != t]
    if c._rs is not None and c._rs[0] == t:
        c._rs = None
    retrying(c, t, -1)


def sub_wait(c, t, qos):
    # SUBSCRIBE (qos 0..2) or UNSUBSCRIBE (qos -1), then wait for its acknowledgement.
    s = c._s
    unsub = qos < 0
    filters = [t] if unsub else [(t, qos)]
    pid = s.subscribe(filters, unsub)
    if pid < 0:
        wait(c, lambda: not s.sub_pending(unsub), c.timeout_ms)
        pid = s.subscribe(filters, unsub)
    c._ack_pid = 0
    wait(c, lambda: c._ack_pid == pid, c.timeout_ms)
    if not unsub and c._granted == 0x80:
        raise MQTTException(0x80)
    return c._granted


def retrying(c, t, qos):
    # Run a blocking exchange; a broken connection is handled like anywhere else and the
    # exchange tried again on the new one, within timeout_ms.
    t0 = ticks_ms()
    while True:
        while c._cs != _UP:
            left = c.timeout_ms - ticks_diff(ticks_ms(), t0)
            if left <= 0 or not (c._reconnect and c._ever):
                raise OSError(errno.ENOTCONN)
            c._service(min(left, 100))
        try:
            return sub_wait(c, t, qos)
        except (OSError, ProtocolError) as e:
            c._lost(e)
            if ticks_diff(ticks_ms(), t0) >= c.timeout_ms:
                raise


def wait(c, done, timeout_ms):
    # Service until done() or timeout (OSError ETIMEDOUT). Connection errors raise.
    t0 = ticks_ms()
    while not done():
        left = timeout_ms - ticks_diff(ticks_ms(), t0)
        if left <= 0:
            raise OSError(errno.ETIMEDOUT)
        if c._cs != _UP:
            raise OSError(errno.ENOTCONN)
        c._round(min(left, _WAIT_SLICE_MS))
