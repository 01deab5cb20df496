# mote.session: the MQTT 3.1.1 client protocol as a sans-I/O state machine.
# Layer 3 (imports mote.compat and mote.codec): fed received bytes and now_ms, it gives bytes
# to write and events; it never touches a socket, reads the clock, sleeps, retries or logs.
#
# Theory of operation
#   The numbers below are the interface: states, events and results are private consts
#   (a public const is a module global, which costs RAM on a board), so a driver defines
#   the ones it uses with these values (the tests check they agree).
#   States (.state): 0 DISCONNECTED (no connection), 1 CONNECTING (CONNECT queued, waiting
#   for CONNACK), 2 CONNECTED, 3 ERROR (the peer broke the protocol or keepalive expired:
#   the driver closes the socket and calls connection_lost() or connect() again).
#   publish() results other than a packet id: -1 NO_ROOM, -2 NOT_CONNECTED.
#   Events (next_event() returns one small int, details in attributes):
#     1 EV_CONNACK    CONNACK arrived: connack_rc (0 = accepted), session_present
#     2 EV_MESSAGE    a PUBLISH to deliver: pkt.topic_off/topic_len/payload_off/payload_len
#                     index rx_buf, valid until the next call of next_event(); pkt.qos,
#                     pkt.retain, pkt.dup, pkt.pid
#     3 EV_PUBLISHED  a QoS 1/2 publish completed (PUBACK / PUBCOMP): ack_pid
#     4 EV_SUBACK     ack_pid; granted codes at pkt.codes_off/codes_len in rx_buf
#     5 EV_UNSUBACK   ack_pid
#     6 EV_PINGRESP   the broker answered a PINGREQ
#     7 EV_DEAD       keepalive: no PINGRESP within keepalive_s; the state is now ERROR
#     8 EV_DROPPED    a PUBLISH larger than rx_buf was skipped (acknowledged when QoS 1/2
#                     and its header fitted, so the broker does not send it again): drop_len
#   Sending: tx_buf/tx_off/tx_len is the chunk to write next; after writing n bytes the
#   driver calls sent(n). Chunks come, in order of priority, from the CONNECT packet, the
#   control buffer (acks, PINGREQ, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT and QoS 0 PUBLISH
#   packets, appended in order), a large QoS 0 payload sent straight from the caller's
#   object, and the outbox (QoS 1/2 PUBLISH packets, and PUBREL after PUBREC, written from
#   a 4-byte scratch). One packet is one chunk, so a driver writes it in one call.
#   Receiving: the driver reads into rx_mv at rx_end (at most rx_room bytes) and calls
#   received(n). A packet larger than rx_buf is skipped as it streams past, never buffered.
#   Outbox: a byte ring of outbox_size bytes holding encoded QoS 1/2 PUBLISH packets in
#   publish order, plus max_inflight slots (pid, offset, length, state). A slot is freed
#   when its flow completes; bytes are reclaimed from the oldest end. On CONNACK every
#   unfinished slot is sent again: PUBLISH with DUP, or PUBREL when PUBREC had come.
#   Slot states: Q1 (wait PUBACK), Q2_REC (wait PUBREC), Q2_COMP (wait PUBCOMP).
#   Incoming QoS 2 (exactly once): a PUBLISH is delivered and its pid remembered in a
#   fixed table until PUBREL; a PUBLISH whose pid is remembered is answered, not delivered.
#   When the table is full, a persistent session leaves the PUBLISH unanswered with the
#   broker and sets want_reconnect (the driver reconnects once in2_pending() is 0, and the
#   broker sends it again); a clean session evicts the oldest id (nothing is ever resent).
#   Keepalive: a PINGREQ goes out when nothing was sent or nothing received for
#   keepalive_s; no PINGRESP within keepalive_s more gives EV_DEAD.
#   Snapshot: mote.snapshot (imported on first use) writes outbox, packet-id counter and
#   incoming QoS 2 ids to a caller's buffer and restores them, validating first.
#   RAM (measured on the 32-bit VM): the subscription ids and counters share one list (_n),
#   the flags one int (_bits), so a Session keeps under 48 attributes (the next size of an
#   instance's table costs 96 B more); received packets are handled in one function and
#   error messages are short, since each function and each long string is heap on a board.
from mote import codec
from mote.codec import ProtocolError
from mote.compat import const, ticks_diff
from mote.topic import name_error

# Only the type checker takes this branch (see mote.client).
_TYPING = const(0)
if _TYPING:
    from typing import Any

    from mote.codec import Packet

_DISCONNECTED = const(0)
_CONNECTING = const(1)
_CONNECTED = const(2)
_ERROR = const(3)

_EV_CONNACK = const(1)
_EV_MESSAGE = const(2)
_EV_PUBLISHED = const(3)
_EV_SUBACK = const(4)
_EV_UNSUBACK = const(5)
_EV_PINGRESP = const(6)
_EV_DEAD = const(7)
_EV_DROPPED = const(8)

_NO_ROOM = const(-1)  # outbox, slots or tx buffer full right now: service the connection
_NOT_CONNECTED = const(-2)  # QoS 0 while not connected: dropped

# Packet types (mote.codec's numbers).
_CONNACK = const(2)
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBACK = const(9)
_UNSUBACK = const(11)
_PINGREQ = const(12)
_DISCONNECT = const(14)

_FREE = const(0)
_Q1 = const(1)
_Q2_REC = const(2)
_Q2_COMP = const(3)

# The chunk being written: CONNECT, the control buffer, a caller's QoS 0 payload, or
# outbox slot i (its PUBLISH, or PUBREL from _rel) as _C_SLOT + i.
_C_NONE = const(0)
_C_CONN = const(1)
_C_CTL = const(2)
_C_EXT = const(3)
_C_SLOT = const(4)

# Bits of _bits: bytes were written / received since the last tick(); EV_DEAD is due; the
# CONNECT asks for a clean session.
_B_TX = const(1)
_B_RX = const(2)
_B_DEAD = const(4)
_B_CLEAN = const(8)

# Bits of _s_flag[i]: slot i is to be sent (again) on this connection; it was sent once.
_F_SEND = const(1)
_F_TX = const(2)

# Indices of _n: the pending SUBSCRIBE's and UNSUBSCRIBE's packet ids (0: none), then
# counters: packets sent again after a reconnect, QoS 2 publishes given up (the broker
# lost their session), duplicate incoming QoS 2 PUBLISH packets not delivered again,
# incoming QoS 2 PUBLISH packets left with the broker (table full). One list, not six
# attributes: a Session's attribute table stays at its smallest size on a board.
_N_SUB = const(0)
_N_UNSUB = const(1)
_N_RESENT = const(2)
_N_ABANDONED = const(3)
_N_DUP_IN = const(4)
_N_DEFERRED_IN = const(5)


class Session:
    """The client side of one MQTT session, across any number of connections.

    Sizes (bytes unless noted) are fixed here; nothing allocates after construction on
    the per-message paths. max_inflight: QoS 1/2 messages outstanding at once;
    outbox_size: room for their encoded packets; rx_size: largest packet received whole;
    tx_size: control buffer (acks, pings, QoS 0 packets); qos2_in: incoming QoS 2 ids
    remembered until PUBREL. Error messages are short (each is a heap string on a
    board); the bad value goes with them."""

    # What mote.session_setup.init sets, for the type checker: an annotation without a value
    # compiles to nothing on MicroPython.
    state: int
    keepalive_ms: int
    pkt: "Packet"
    rx_buf: bytearray
    rx_mv: memoryview
    rx_end: int
    rx_room: int
    _rx_start: int
    _skip: int
    tx_buf: "Any"
    tx_off: int
    tx_len: int
    _chunk: int
    _conn: bytearray
    _ctl: bytearray
    _ctl_sent: int
    _ctl_end: int
    _x_buf: "Any"
    _topic_ok: "Any"
    _x_at: int
    _rel: bytearray
    max_inflight: int
    _ob: bytearray
    _s_pid: list
    _s_off: list
    _s_len: list
    _s_state: bytearray
    _s_flag: bytearray
    _first: int
    _count: int
    _live: int
    _pid: int
    _n: list
    _in2: list
    _in2_rr: int
    want_reconnect: bool
    ping_out: bool
    ping_at: "Any"
    _last_tx: "Any"
    _last_rx: "Any"
    _bits: int
    connack_rc: int
    session_present: bool
    ack_pid: int
    drop_len: int
    dropped: int

    def __init__(self, max_inflight=8, outbox_size=2048, rx_size=1024, tx_size=256, qos2_in=16):
        from mote import session_setup  # the body: see the comment opening this file

        session_setup.init(self, max_inflight, outbox_size, rx_size, tx_size, qos2_in)

    # Connection life cycle ---------------------------------------------------------

    def set_connect(
        self,
        client_id,
        clean_session=True,
        keepalive_s=0,
        will_topic=None,
        will_msg=None,
        will_qos=0,
        will_retain=False,
        user=None,
        password=None,
    ):
        """Encode the CONNECT packet used by every following connect() (allocates)."""
        # The codec sizes it (buf None), then writes it: one set of arguments, two calls.
        a = (client_id, clean_session, keepalive_s, will_topic, will_msg, will_qos, will_retain)
        buf = bytearray(codec.encode_connect(None, 0, *a, user, password))
        codec.encode_connect(buf, 0, *a, user, password)
        self._conn = buf
        self._bits = self._bits & ~_B_CLEAN | (_B_CLEAN if clean_session else 0)
        self.keepalive_ms = keepalive_s * 1000

    def connect(self, now_ms):
        """Start a new connection: CONNECT is the first chunk to send. The outbox and
        packet ids carry over; anything half-sent or half-received is dropped."""
        if not self._conn:
            raise ValueError("no CONNECT", None)  # set_connect() first
        self.connection_lost()  # forget the old link, if any
        self.state = _CONNECTING
        self._last_tx = self._last_rx = now_ms
        self._set_chunk(_C_CONN, self._conn, 0, len(self._conn))

    def connection_lost(self):
        """The transport is gone: forget the link, keep the session (outbox, ids)."""
        self.state = _DISCONNECTED
        self.rx_end = self._rx_start = self._skip = 0
        self.rx_room = len(self.rx_buf)
        self.tx_buf = self._x_buf = None
        self.tx_off = self.tx_len = self._chunk = self._ctl_sent = self._ctl_end = 0
        for i in range(self.max_inflight):
            self._s_flag[i] &= _F_TX
        self._n[_N_SUB] = self._n[_N_UNSUB] = 0
        self._bits &= _B_CLEAN
        self.ping_out = self.want_reconnect = False

    def disconnect(self):
        """Queue DISCONNECT; no more packets are accepted until connect()."""
        if self.state == _CONNECTED and len(self._ctl) - self._ctl_end >= 2:
            self._ctl_end = codec.encode_empty(self._ctl, self._ctl_end, _DISCONNECT)
            self._kick()
        self.state = _DISCONNECTED

    # Outgoing messages -------------------------------------------------------------

    def pending(self):
        """QoS 1/2 publishes not yet completed."""
        return self._live

    def publish(self, topic, msg, qos=0, retain=False):
        """Queue a PUBLISH. Returns its packet id (0 for QoS 0), NO_ROOM when it cannot be
        queued now (service the connection and retry) or NOT_CONNECTED (QoS 0 only:
        dropped). Raises ValueError for bad arguments or a packet that can never fit
        ("too long"). QoS 1/2 are queued whatever the state and sent once connected. No
        allocation for bytes-like topic and msg."""
        if isinstance(topic, str):
            topic = topic.encode()
        if isinstance(msg, str):
            msg = msg.encode()
        # The same bytes object as last time was checked then (bytes cannot change):
        # publishing in a loop to one topic skips the per-byte scan.
        if topic is not self._topic_ok:
            err = name_error(topic, 0, len(topic))
            if err is not None:
                raise ValueError(err, topic)
            if type(topic) is bytes:
                self._topic_ok = topic
        mlen = len(msg)
        size = codec.publish_size(len(topic), mlen, qos)
        if not qos:
            ctl = self._ctl
            if self.state != _CONNECTED:
                return _NOT_CONNECTED
            if self._x_buf is not None:
                return _NO_ROOM
            room = len(ctl) - self._ctl_end
            if size <= len(ctl):
                if size > room:
                    return _NO_ROOM
                self._ctl_end = codec.encode_publish(ctl, self._ctl_end, topic, msg, 0, retain)
            else:
                hdr = size - mlen
                if hdr > len(ctl):
                    raise ValueError("too long", hdr)  # the topic alone overfills tx_buf
                if hdr > room:
                    return _NO_ROOM
                self._x_at = codec.encode_publish_header(
                    ctl, self._ctl_end, topic, mlen, 0, retain
                )
                self._ctl_end = self._x_at
                self._x_buf = msg
            self._kick()
            return 0
        ob = self._ob
        if size > len(ob):
            raise ValueError("too long", size)  # larger than the outbox
        n = self.max_inflight
        c = self._count
        if c == n:
            return _NO_ROOM
        # Where in the outbox ring: after the newest packet, or at the front.
        off = 0
        if c:
            t = self._s_off[self._first]
            last = (self._first + c - 1) % n
            off = self._s_off[last] + self._s_len[last]
            if self._s_off[last] >= t:  # not wrapped: free runs are [off, end) and [0, t)
                if size > len(ob) - off:
                    off = 0 if size <= t else -1
            elif size > t - off:  # wrapped: the free run is [off, t)
                off = -1
            if off < 0:
                return _NO_ROOM
        last = self._pid
        pid = self._next_pid()
        try:
            codec.encode_publish(ob, off, topic, msg, qos, retain, False, pid)
        except ValueError:
            self._pid = last  # a refused message uses no packet id
            raise
        i = (self._first + c) % n
        self._count = c + 1
        self._live += 1
        self._s_pid[i] = pid
        self._s_off[i] = off
        self._s_len[i] = size
        self._s_state[i] = _Q1 if qos == 1 else _Q2_REC
        self._s_flag[i] = _F_SEND if self.state == _CONNECTED else 0
        self._kick()
        return pid

    def holds_caller_data(self):
        """True while a large QoS 0 payload is being sent from the caller's object: the
        driver must finish writing it before publish() returns."""
        return self._x_buf is not None

    def _next_pid(self):
        # Ids 1..65535 in order, skipping any still in use (DESIGN: packet identifiers).
        pid = self._pid
        while True:
            pid = pid + 1 if pid < 65535 else 1
            if pid != self._n[_N_SUB] and pid != self._n[_N_UNSUB] and self._slot_of(pid) < 0:
                self._pid = pid
                return pid

    def _slot_of(self, pid):
        n = self.max_inflight
        i = self._first
        for _ in range(self._count):
            if self._s_pid[i] == pid and self._s_state[i] != _FREE:
                return i
            i = i + 1 if i + 1 < n else 0
        return -1

    def _complete(self, i):
        self._s_state[i] = _FREE
        self._s_flag[i] = 0
        self._live -= 1
        n = self.max_inflight
        while self._count and self._s_state[self._first] == _FREE:
            self._first = self._first + 1 if self._first + 1 < n else 0
            self._count -= 1
        if not self._count:
            self._first = 0

    def subscribe(self, filters, unsub=False):
        """Queue SUBSCRIBE for a list of (filter, qos) pairs, or with unsub=True
        UNSUBSCRIBE for a list of filters; returns its packet id, or NO_ROOM while another
        of its kind is pending or the tx buffer is full. Allocates."""
        from mote import session_setup

        return session_setup.subscribe(self, filters, unsub)

    def sub_pending(self, unsub=False):
        """True while a SUBSCRIBE (or with unsub=True an UNSUBSCRIBE) awaits its
        acknowledgement."""
        return bool(self._n[_N_UNSUB if unsub else _N_SUB])

    def ping(self, now_ms):
        """Queue a PINGREQ now (keepalive does this by itself). False if no room."""
        if self.state != _CONNECTED or len(self._ctl) - self._ctl_end < 2:
            return False
        self._ctl_end = codec.encode_empty(self._ctl, self._ctl_end, _PINGREQ)
        if not self.ping_out:
            self.ping_out = True
            self.ping_at = now_ms
        self._kick()
        return True

    # Time --------------------------------------------------------------------------

    def tick(self, now_ms):
        """Advance keepalive: queue PINGREQ when due; EV_DEAD when PINGRESP is overdue."""
        b = self._bits
        if b & _B_TX:
            self._last_tx = now_ms
        if b & _B_RX:
            self._last_rx = now_ms
        self._bits = b & ~(_B_TX | _B_RX)
        ka = self.keepalive_ms
        if self.state != _CONNECTED or not ka:
            return
        if self.ping_out:
            if ticks_diff(now_ms, self.ping_at) >= ka:
                self._bits |= _B_DEAD
                self.state = _ERROR
        elif ticks_diff(now_ms, self._last_tx) >= ka or ticks_diff(now_ms, self._last_rx) >= ka:
            self.ping(now_ms)

    def ping_due_in(self, now_ms):
        """Milliseconds until tick() has something to do (for the driver's poll timeout);
        -1 when keepalive is off or not connected."""
        ka = self.keepalive_ms
        if self.state != _CONNECTED or not ka:
            return -1
        if self.ping_out:
            return max(0, ka - ticks_diff(now_ms, self.ping_at))
        idle = max(ticks_diff(now_ms, self._last_tx), ticks_diff(now_ms, self._last_rx))
        return max(0, ka - idle)

    # Transmit ----------------------------------------------------------------------

    def _kick(self):
        if not self.tx_len:
            self._next_chunk()

    def sent(self, n):
        """The driver wrote n bytes of the current chunk."""
        if n <= 0 or n > self.tx_len:
            raise ValueError("bad count", n)
        self._bits |= _B_TX
        self.tx_off += n
        self.tx_len -= n
        c = self._chunk
        if c >= _C_SLOT:
            self._s_flag[c - _C_SLOT] |= _F_TX
        if self.tx_len:
            return
        if c == _C_CTL:
            self._ctl_sent = self.tx_off
            if self._ctl_sent == self._ctl_end and self._x_buf is None:
                self._ctl_sent = self._ctl_end = 0
        elif c == _C_EXT:
            self._x_buf = None
            if self._ctl_sent == self._ctl_end:
                self._ctl_sent = self._ctl_end = 0
        elif c >= _C_SLOT:
            self._s_flag[c - _C_SLOT] &= _F_TX
        self._chunk = _C_NONE
        self.tx_buf = None
        self._next_chunk()

    def _next_chunk(self):
        x = self._x_buf
        if x is not None and self._ctl_sent == self._x_at:
            self._set_chunk(_C_EXT, x, 0, len(x))
            return
        if self._ctl_sent < self._ctl_end:
            end = self._ctl_end
            if x is not None and self._ctl_sent < self._x_at:
                end = self._x_at
            self._set_chunk(_C_CTL, self._ctl, self._ctl_sent, end - self._ctl_sent)
            return
        if self.state != _CONNECTED:
            return
        n = self.max_inflight
        i = self._first
        for _ in range(self._count):
            if self._s_flag[i] & _F_SEND:
                if self._s_state[i] == _Q2_COMP:
                    codec.encode_ack(self._rel, 0, _PUBREL, self._s_pid[i])
                    self._set_chunk(_C_SLOT + i, self._rel, 0, 4)
                else:
                    self._set_chunk(_C_SLOT + i, self._ob, self._s_off[i], self._s_len[i])
                return
            i = i + 1 if i + 1 < n else 0

    def _set_chunk(self, kind, buf, off, n):
        self._chunk = kind
        self.tx_buf = buf
        self.tx_off = off
        self.tx_len = n

    # Receive -----------------------------------------------------------------------

    def received(self, n):
        """The driver read n bytes into rx_mv[rx_end:]."""
        if n <= 0 or n > self.rx_room:
            raise ValueError("bad count", n)
        self._bits |= _B_RX
        if self._skip:
            k = self._skip if self._skip < n else n
            self._skip -= k
            if k == n:
                return
            # What follows the skipped packet starts a new stream at rx_buf[rx_end + k].
            self._rx_start = self.rx_end + k
        self.rx_end += n
        self.rx_room = len(self.rx_buf) - self.rx_end

    def next_event(self):
        """Handle received packets until one gives an event; returns it, or 0 when none
        is complete (or acks cannot be queued until the driver writes). Raises
        ProtocolError on a protocol violation, and the session stays in ERROR."""
        if self._bits & _B_DEAD:
            self._bits &= ~_B_DEAD
            return _EV_DEAD
        if self.state == _ERROR:
            raise ProtocolError("in ERROR", None)  # the session failed: reconnect
        buf = self.rx_buf
        pkt = self.pkt
        try:
            # One packet per round; `continue` when it gave no event. (One function, not
            # a helper per packet type: each function costs RAM on a board.)
            while True:
                start = self._rx_start
                end = self.rx_end
                if start == end:
                    self._rx_start = self.rx_end = 0
                    self.rx_room = len(buf)
                    return 0
                if len(self._ctl) - self._ctl_end < 4:
                    return 0  # an ack might not fit: let the driver write first
                h = codec.decode_header(buf, start, end, pkt)
                if not h:
                    self._compact(5)
                    return 0
                total = h + pkt.rem_len
                t = pkt.type
                if total > len(buf):
                    # Larger than rx_buf: skip it as it streams past.
                    if t != _PUBLISH:
                        raise ProtocolError("too long", total)  # larger than rx_buf
                    qos = (pkt.flags >> 1) & 3
                    if qos and end - start >= h + 2:
                        tlen = (buf[start + h] << 8) | buf[start + h + 1]
                        need = h + 2 + tlen + 2
                        if need <= len(buf):
                            if end - start < need:
                                self._compact(need)
                                return 0
                            p = start + need - 2
                            pid = (buf[p] << 8) | buf[p + 1]
                            if pid:
                                # Acknowledge so the broker does not redeliver what can
                                # never fit.
                                self._queue_ack(_PUBACK if qos == 1 else _PUBREC, pid)
                    elif qos and h + 2 <= len(buf):
                        self._compact(h + 2)
                        return 0
                    self._skip = total - (end - start)
                    self._rx_start = self.rx_end = 0
                    self.rx_room = len(buf)
                    self.dropped += 1
                    self.drop_len = total
                    return _EV_DROPPED
                if end - start < total:
                    self._compact(total)
                    return 0
                codec.decode_body(buf, start + h, start + total, pkt)
                if t == _PUBLISH and not pkt.topic_ascii:
                    # MQTT-1.5.3-1: ill-formed UTF-8 in the topic closes the connection (the
                    # codec has checked wildcards and NUL, and an all-ASCII topic has no
                    # UTF-8 to get wrong). Checked in place: no allocation.
                    err = name_error(buf, pkt.topic_off, pkt.topic_len)
                    if err is not None:
                        raise ProtocolError(err, pkt.topic_len)
                self._rx_start = start + total
                if t == _CONNACK:
                    if self.state != _CONNECTING:
                        raise ProtocolError("bad CONNACK", self.state)  # unexpected
                    self.connack_rc = pkt.rc
                    self.session_present = pkt.session_present
                    if pkt.rc:
                        self.state = _DISCONNECTED
                        return _EV_CONNACK
                    self.state = _CONNECTED
                    # Every unfinished slot goes out again.
                    fresh = not pkt.session_present
                    if fresh:
                        for k in range(len(self._in2)):
                            self._in2[k] = 0  # the broker forgot its half of those flows
                    n = self.max_inflight
                    i = self._first
                    for _ in range(self._count):
                        st = self._s_state[i]
                        if st != _FREE:
                            if fresh and self._s_flag[i] & _F_TX:
                                # A new session (clean, or lost by the broker) has no state
                                # for flows begun in the old one (MQTT-3.1.2-6): nothing may
                                # resume. QoS 1 is published again as a new message (at
                                # least once allows a second copy). QoS 2 after PUBREC
                                # belongs to the broker: done. QoS 2 before PUBREC may have
                                # been delivered already; publishing it again could deliver
                                # it twice, so it is given up (counted in _N_ABANDONED).
                                if st == _Q1:
                                    self._ob[self._s_off[i]] &= 0xF7  # a new message: no DUP
                                    self._s_flag[i] = 0
                                else:
                                    if st == _Q2_REC:
                                        self._n[_N_ABANDONED] += 1
                                    self._complete(i)
                                    i = i + 1 if i + 1 < n else 0
                                    continue
                            if self._s_flag[i] & _F_TX:
                                self._n[_N_RESENT] += 1
                                if st != _Q2_COMP:
                                    self._ob[self._s_off[i]] |= 0x08  # DUP, MQTT-3.3.1-1
                            self._s_flag[i] |= _F_SEND
                        i = i + 1 if i + 1 < n else 0
                    self._kick()
                    return _EV_CONNACK
                if self.state != _CONNECTED:
                    raise ProtocolError("no CONNACK", t)  # a packet before CONNACK
                pid = pkt.pid
                if t == _PUBLISH:
                    if pkt.qos == 1:
                        self._queue_ack(_PUBACK, pid)
                    elif pkt.qos == 2:
                        # Exactly once: remember pid until PUBREL; a remembered one is a
                        # duplicate, answered but not delivered.
                        in2 = self._in2
                        free = -1
                        dup = False
                        for k in range(len(in2)):
                            if in2[k] == pid:
                                dup = True
                                break
                            if not in2[k] and free < 0:
                                free = k
                        if not dup:
                            if free < 0:
                                # The table is full (MQTT 3.1.1 has no receive maximum). A
                                # persistent session leaves the message with the broker: no
                                # PUBREC, no delivery; the driver reconnects once the table
                                # has drained and the broker sends it again. A clean
                                # session is never resent anything, so forgetting the
                                # oldest remembered id cannot cause a duplicate: evict one.
                                if not self._bits & _B_CLEAN:
                                    self._n[_N_DEFERRED_IN] += 1
                                    self.want_reconnect = True
                                    continue
                                free = self._in2_rr
                            in2[free] = pid
                            self._in2_rr = free + 1 if free + 1 < len(in2) else 0
                        self._queue_ack(_PUBREC, pid)
                        if dup:
                            self._n[_N_DUP_IN] += 1
                            continue
                    return _EV_MESSAGE
                if t == _PUBACK or t == _PUBCOMP:
                    i = self._slot_of(pid)
                    if i < 0 or self._s_state[i] != (_Q1 if t == _PUBACK else _Q2_COMP):
                        raise ProtocolError("bad PUBACK" if t == _PUBACK else "bad PUBCOMP", pid)
                    self._complete(i)
                    self.ack_pid = pid
                    return _EV_PUBLISHED
                if t == _PUBREC:
                    i = self._slot_of(pid)
                    if i < 0 or self._s_state[i] == _Q1:
                        raise ProtocolError("bad PUBREC", pid)
                    self._s_state[i] = _Q2_COMP  # a repeated PUBREC gets PUBREL again
                    self._s_flag[i] |= _F_SEND
                    self._kick()
                    continue
                if t == _PUBREL:
                    # MQTT-4.3.3-11: answer PUBCOMP even for an id no longer remembered.
                    in2 = self._in2
                    for k in range(len(in2)):
                        if in2[k] == pid:
                            in2[k] = 0
                    self._queue_ack(_PUBCOMP, pid)
                    continue
                if t == _SUBACK or t == _UNSUBACK:
                    k = _N_SUB if t == _SUBACK else _N_UNSUB
                    if pid != self._n[k]:
                        raise ProtocolError("bad SUBACK" if t == _SUBACK else "bad UNSUBACK", pid)
                    self._n[k] = 0
                    self.ack_pid = pid
                    return _EV_SUBACK + k  # or _EV_UNSUBACK
                # PINGRESP (decode_body has rejected every other type)
                self.ping_out = False
                return _EV_PINGRESP
        except Exception:
            self.state = _ERROR
            raise

    def _compact(self, need):
        # Keep a partial packet; move it to the front only if it could not fit where it
        # is (slicing allocates one small view, so this stays off the common path).
        start = self._rx_start
        if start and start + need > len(self.rx_buf):
            n = self.rx_end - start
            self.rx_buf[0:n] = self.rx_mv[start : self.rx_end]
            self._rx_start = 0
            self.rx_end = n
            self.rx_room = len(self.rx_buf) - n

    def _queue_ack(self, t, pid):
        self._ctl_end = codec.encode_ack(self._ctl, self._ctl_end, t, pid)
        self._kick()

    def head_sent(self):
        """The packet id of the oldest unfinished PUBLISH when it was written on this
        connection and is still unacknowledged; else 0 (the client's poison rule)."""
        i = self._first
        if self.state != _CONNECTED or not self._count or self._s_flag[i] != _F_TX:
            return 0  # not connected, empty, or the oldest is unsent or to be sent again
        st = self._s_state[i]
        return self._s_pid[i] if st == _Q1 or st == _Q2_REC else 0

    def drop_head(self):
        """Remove the oldest message from the outbox (the broker refuses it)."""
        if self._count:
            self._complete(self._first)

    def in2_pending(self):
        """Incoming QoS 2 ids remembered until PUBREL."""
        n = 0
        for pid in self._in2:
            if pid:
                n += 1
        return n
