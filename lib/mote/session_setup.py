# mote.session_setup: a Session's construction and its SUBSCRIBE/UNSUBSCRIBE, kept apart.
# Layer 3, a part of mote.session (whose rules apply: see the top of session.py). A
# connected client needs this only while it is built and while it subscribes: it is
# imported on first use by Session.__init__ and Session.subscribe, and forgotten again with
# mote.link once connected on a board (RAM).
from mote import codec
from mote.codec import Packet
from mote.compat import const

# mote.session's values (the tests check they agree)
_DISCONNECTED = const(0)
_CONNECTED = const(2)
_NO_ROOM = const(-1)
_C_NONE = const(0)
_B_CLEAN = const(8)
_N_SUB = const(0)
_N_UNSUB = const(1)


def init(s, max_inflight, outbox_size, rx_size, tx_size, qos2_in):
    """Session.__init__'s body (see its docstring)."""
    if not 0 < max_inflight <= 255:
        raise ValueError("max_inflight", max_inflight)  # out of range: 1..255
    if rx_size < 16 or tx_size < 16 or outbox_size < 16:
        raise ValueError("too small", min(rx_size, tx_size, outbox_size))  # under 16
    s.state = _DISCONNECTED
    s.keepalive_ms = 0
    s.pkt = Packet()
    # receive
    s.rx_buf = bytearray(rx_size)
    s.rx_mv = memoryview(s.rx_buf)
    s.rx_end = 0
    s.rx_room = rx_size
    s._rx_start = 0
    s._skip = 0
    # transmit
    s.tx_buf = None
    s.tx_off = 0
    s.tx_len = 0
    s._chunk = _C_NONE
    s._conn = bytearray()
    s._ctl = bytearray(tx_size)
    s._ctl_sent = 0
    s._ctl_end = 0
    s._x_buf = None  # a large QoS 0 payload, sent from the caller's object
    s._topic_ok = None  # the last bytes topic found valid
    s._x_at = 0
    s._rel = bytearray(4)
    # outbox
    n = max_inflight
    s.max_inflight = n
    s._ob = bytearray(outbox_size)
    s._s_pid = [0] * n
    s._s_off = [0] * n
    s._s_len = [0] * n
    s._s_state = bytearray(n)
    s._s_flag = bytearray(n)  # _F_* bits; _F_TX: a resend carries DUP
    s._first = 0
    s._count = 0  # slots in use, completed holes included, oldest at _first
    s._live = 0  # unfinished flows
    s._pid = 0
    s._n = [0] * 6  # _N_* (mote.session)
    # incoming QoS 2 ids awaiting PUBREL (0 = empty)
    s._in2 = [0] * qos2_in
    s._in2_rr = 0  # eviction cursor (clean sessions only)
    s.want_reconnect = False  # QoS 2 messages were deferred: see next_event
    # keepalive
    s.ping_out = False  # a PINGREQ awaits its PINGRESP
    s.ping_at = 0  # now_ms when it was queued
    s._last_tx = 0
    s._last_rx = 0
    s._bits = _B_CLEAN
    # results and counters
    s.connack_rc = 0
    s.session_present = False
    s.ack_pid = 0
    s.drop_len = 0
    s.dropped = 0  # oversize PUBLISH packets skipped


def subscribe(s, filters, unsub):
    """Session.subscribe's body (see its docstring)."""
    if s.state != _CONNECTED:
        raise ValueError("not connected", s.state)
    size = codec.encode_subscribe(None, 0, 1, filters, unsub)  # its size (pid 1: any)
    if size > len(s._ctl):
        raise ValueError("too long", size)  # larger than the tx buffer
    k = _N_UNSUB if unsub else _N_SUB
    if s._n[k] or size > len(s._ctl) - s._ctl_end:
        return _NO_ROOM
    pid = s._next_pid()
    s._ctl_end = codec.encode_subscribe(s._ctl, s._ctl_end, pid, filters, unsub)
    s._n[k] = pid
    s._kick()
    return pid
