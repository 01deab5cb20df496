# mote.client: the blocking MQTTClient over a plain or TLS socket, driving a Session.
# Layer 4: owns the socket, the clock, polling, reconnect with backoff, and callbacks.
# A drop-in superset of umqtt.simple / umqtt.robust (see README "Client API").
#
# Connecting is a state machine that never waits unless asked to: DOWN (no socket) ->
# TCP (a non-blocking connect under way) -> MQTT (TLS handshake, inside the writes of
# CONNECT, then CONNACK) -> UP. connect() runs it to the end under one deadline;
# check_msg() and the other calls advance it by one non-blocking step, so an unreachable,
# silent or stalling broker never holds the caller's loop. Only the name lookup can block
# (getaddrinfo has no non-blocking form); it runs at most once per attempt, and the address
# is kept for the next one until a TCP connect to it fails.
#
# The machine itself (and the blocking disconnect) lives in mote.link, the constructor's
# body and the blocking subscribe/unsubscribe exchanges in mote.client_setup; each is
# imported when needed and, on MicroPython, forgotten again once connected: a connected
# client keeps only its per-message code in the heap.
import errno

from mote import compat
from mote.codec import MQTTException, ProtocolError
from mote.compat import const, read_some, ticks_add, ticks_diff, ticks_ms, write_some
from mote.topic import validate_name

# Only the type checker takes this branch (tools/typecheck.py: --always-true=_TYPING); on
# MicroPython a false const() removes it at compile time.
_TYPING = const(0)
if _TYPING:
    from typing import Any

    from mote.session import Session


def _link():
    from mote import link

    return link


# mote.session's states, events and publish() results (see the comment opening it).
_CONNECTED = const(2)
_EV_CONNACK = const(1)
_EV_MESSAGE = const(2)
_EV_PUBLISHED = const(3)
_EV_SUBACK = const(4)
_EV_UNSUBACK = const(5)
_EV_PINGRESP = const(6)
_EV_DEAD = const(7)
_EV_DROPPED = const(8)
_NO_ROOM = const(-1)
_NOT_CONNECTED = const(-2)
# Connection states (_cs).
_DOWN = const(0)
_TCP = const(1)
_MQTT = const(2)
_UP = const(3)
_WAIT_SLICE_MS = const(1000)  # longest single poll while blocking
_POLL_R = const(1)  # select.POLLIN: the same on MicroPython's ports and on CPython
_POLL_RW = const(5)
# Counters in MQTTClient._n, in the order mote.stats reads them.
_N_CONN_FAIL = const(0)
_N_LOST = const(1)
_N_PROTOCOL = const(2)
_N_SENT = const(3)
_N_RECV = const(4)
_N_Q0_DROPPED = const(5)
_N_SUB_REFUSED = const(6)
_N_POISON = const(7)


class MQTTClient:
    """An MQTT 3.1.1 client. See README "Client API" for every parameter.

    client_id, server, port=0 (1883, or 8883 with TLS), user, password, keepalive (s),
    ssl (False/None, True, or an SSL context), ssl_params (cafile, cadata, certfile,
    keyfile, or umqtt's cert, key, cert_reqs; server_hostname), and keyword-only:
    max_inflight (QoS 1/2 messages outstanding), reconnect (after a first connect),
    rx_size (largest packet received), tx_size, outbox_size (bytes for unacknowledged QoS
    1/2 packets; 0: 1,024 on a heap under 256 KB, as a plain ESP32's, else 2,048),
    qos2_in, zero_copy (callback gets memoryviews valid during the call),
    timeout_ms (one connect attempt, and blocking waits), backoff_ms and backoff_max_ms
    (reconnect delays), nodelay (TCP_NODELAY; None: adaptive, on while anything awaits an
    answer, off while only QoS 0 streams, so TCP coalesces bursts).
    server may also be a list of hosts or (host, port) pairs, tried in order (failover).
    All buffers are allocated here."""

    DEBUG = False  # umqtt.robust: print reconnect activity
    _UNLOAD = compat.MICROPYTHON  # forget mote.link once connected (mote.aio keeps it)

    # The attributes mote.client_setup.init sets, for the type checker: an annotation without a
    # value compiles to nothing on MicroPython, and to strings in __annotations__ here.
    client_id: "Any"
    server: "Any"
    port: int
    user: "Any"
    pswd: "Any"
    keepalive: int
    ssl: "Any"
    ssl_params: "Any"
    cb: "Any"
    lw_topic: "Any"
    lw_msg: "Any"
    lw_qos: int
    lw_retain: bool
    sock: "Any"
    zero_copy: bool
    timeout_ms: int
    _reconnect: bool
    _backoff_ms: int
    _backoff_max_ms: int
    _nodelay: "Any"
    _adapt: bool
    _nagle: bool
    _w_rx: int
    _quickack: bool
    _s: "Session"
    _poller: "Any"
    _want_write: bool
    _servers: list
    _srv: int
    _addr: "Any"
    _cs: int
    _deadline: "Any"  # ticks
    _auto: int
    _own: bool
    _clean: bool
    _ever: bool
    _fails: int
    _next_try: "Any"  # ticks
    _rng: int
    _subs: list
    _renew: bool
    _rs: "Any"
    _rs_pid: int
    _rs_at: "Any"  # ticks
    _granted: int
    _ack_pid: int
    _handled: int
    _depth: int
    _warned: bool
    _strikes: int
    _poison_pid: int
    _up_at: "Any"  # ticks
    msg_qos: int
    msg_retain: bool
    msg_dup: bool
    _n: list
    reconnects: int
    _rtt_ms: int

    def __init__(
        self,
        client_id,
        server,
        port=0,
        user=None,
        password=None,
        keepalive=0,
        ssl=None,
        ssl_params={},  # noqa: B006  (umqtt's signature; never mutated)
        *,
        max_inflight=8,
        reconnect=True,
        rx_size=1024,
        tx_size=256,
        outbox_size=0,
        qos2_in=16,
        zero_copy=False,
        timeout_ms=10000,
        backoff_ms=500,
        backoff_max_ms=30000,
        nodelay=None,
    ):
        from mote import client_setup

        client_setup.init(
            self,
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
        )
        self._unlink(True)  # client_setup, session_setup: needed no more

    # umqtt-compatible set-up ----------------------------------------------------------

    def set_callback(self, f):
        """f(topic, msg) for each received message: bytes, or memoryviews valid only
        during the call when zero_copy=True. msg_qos/msg_retain/msg_dup describe it."""
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        if not 0 <= qos <= 2:
            raise ValueError("QoS must be 0, 1 or 2", qos)
        self.lw_topic = validate_name(topic)
        self.lw_msg = msg
        self.lw_qos = qos
        self.lw_retain = retain

    # Connection ---------------------------------------------------------------------

    def connect(self, clean_session=True, timeout=None):
        """Connect, waiting at most timeout seconds (default timeout_ms) per server.
        Returns True when the broker kept a session. Raises MQTTException(code) when
        refused, OSError (or the TLS layer's error) on a failure. Later reconnects reuse
        these arguments."""
        try:
            return _link().connect(self, clean_session, timeout)
        finally:
            self._unlink()

    def _close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
            self._poller = None
        self._cs = _DOWN
        self._s.connection_lost()

    def is_connected(self):
        return self._cs == _UP

    def disconnect(self):
        """Send DISCONNECT (the broker then drops the Last Will) and close. No reconnect
        until connect() is called again."""
        _link().disconnect(self)
        self._unlink(True)

    def reconnect(self):
        """umqtt.robust's reconnect(): retry with backoff until connected; subscriptions
        are renewed as on an automatic reconnect."""
        try:
            return _link().reconnect(self)
        finally:
            self._unlink()

    def _lost(self, e):
        # The connection broke (mote.link.lost): raises unless reconnect handles it.
        _link().lost(self, e)

    def _advance(self, wait_ms):
        # Not connected: one step of the connection machine (mote.link.advance).
        try:
            _link().advance(self, wait_ms)
        finally:
            self._unlink()

    # Publishing ---------------------------------------------------------------------

    def publish(self, topic, msg, retain=False, qos=0):
        """Send a PUBLISH. Returns the packet id (0 for QoS 0). QoS 1/2 return once the
        packet is written (or queued while disconnected); the outbox keeps it until
        PUBACK/PUBCOMP. When max_inflight messages are outstanding this services the
        connection until a slot frees (raising OSError(ENOBUFS) after timeout_ms; at once
        inside a callback, where nothing may be dispatched). QoS 0 while disconnected:
        dropped, returns -1 (with reconnect=False: OSError). No allocation for bytes topic
        and bytes/bytearray msg once connected."""
        s = self._s
        if self._cs != _UP:
            if not self._reconnect:
                raise OSError(errno.ENOTCONN)
            if not self._depth:
                self._advance(0)
        pid = s.publish(topic, msg, qos, retain)
        if pid == _NO_ROOM:
            t0 = ticks_ms()
            while pid == _NO_ROOM:
                if self._depth or ticks_diff(ticks_ms(), t0) >= self.timeout_ms:
                    raise OSError(errno.ENOBUFS, "outbox full")
                self._service(100)
                pid = s.publish(topic, msg, qos, retain)
        if pid == _NOT_CONNECTED:
            self._n[_N_Q0_DROPPED] += 1
            return -1
        self._n[_N_SENT] += 1
        if self._cs == _UP:
            if self._adapt:
                if qos:
                    if self._nagle:
                        self._nagle_set(False)  # answered flows leave at once
                elif not self._nagle and self._w_rx and not s.pending() and not s.ping_out:
                    self._nagle_set(True)  # a QoS 0 burst: let TCP coalesce it
            try:
                if s.holds_caller_data():
                    self._write_all(self.timeout_ms)  # msg must not be kept
                else:
                    self._write()
                s.tick(ticks_ms())
                if s.ping_out and not self._depth:
                    self._read_dispatch()  # a PINGRESP must not wait for check_msg()
            except (OSError, ProtocolError) as e:
                self._lost(e)
        return pid

    def pending(self):
        """Outbound QoS 1/2 messages not yet completed."""
        return self._s.pending()

    def flush(self, timeout_ms=None):
        """Drive the connection (reconnecting if needed) until every QoS 1/2 message is
        completed or timeout_ms passes. Returns how many are still pending."""
        if timeout_ms is None:
            timeout_ms = self.timeout_ms
        if self._nagle and self._adapt and self.sock is not None:
            self._nagle_set(False)  # push a QoS 0 tail Nagle may be holding
        t0 = ticks_ms()
        while self._s.pending():
            left = timeout_ms - ticks_diff(ticks_ms(), t0)
            if left <= 0:
                break
            self._service(min(left, 100))
            # Nothing more to send that would carry our ACK: send it now, or a broker
            # with Nagle's algorithm (mosquitto's default) holds the remaining
            # acknowledgements until our delayed-ACK timer fires.
            if self._quickack and self.sock is not None and self._s.pending():
                self._quickack = compat.quickack(self.sock)
        return self._s.pending()

    # Subscriptions ------------------------------------------------------------------

    def subscribe(self, topic, qos=0):
        """Subscribe and wait for SUBACK. Returns the granted QoS; a refusal (0x80)
        raises MQTTException(0x80). Renewed automatically after a reconnect when the
        broker kept no session."""
        from mote import client_setup

        try:
            return client_setup.subscribe(self, topic, qos)
        finally:
            self._unlink()

    def unsubscribe(self, topic):
        """Unsubscribe and wait for UNSUBACK."""
        from mote import client_setup

        try:
            client_setup.unsubscribe(self, topic)
        finally:
            self._unlink()

    def _unlink(self, always=False):
        # Connected (or disconnected for good, or just built): forget mote.link and the
        # set-up modules of client, codec and session, so their code leaves the heap (see
        # link's opening comment).
        if (always or self._cs == _UP) and self._UNLOAD:
            import sys

            import mote

            for name in ("link", "client_setup", "codec_setup", "session_setup"):
                if sys.modules.pop("mote." + name, None) is not None and name in mote.__dict__:
                    delattr(mote, name)

    # Receiving and keepalive ----------------------------------------------------------

    def check_msg(self):
        """Handle every packet already received, send PINGREQ when due and advance a
        reconnect by one step. Never waits for the network. No allocation on the
        keepalive path."""
        self._service(0)

    def wait_msg(self):
        """Block until at least one packet is handled (reconnecting as needed when
        enabled), then handle every packet already received."""
        self._handled = 0
        while not self._handled:
            self._service(_WAIT_SLICE_MS)

    def ping(self):
        """Send PINGREQ now; its PINGRESP is handled by check_msg()/wait_msg()."""
        if self._cs != _UP:
            raise OSError(errno.ENOTCONN)
        self._s.ping(ticks_ms())
        if self._nagle and self._adapt:
            self._nagle_set(False)
        try:
            self._write()
        except OSError as e:
            self._lost(e)

    def _service(self, wait_ms):
        # One round with reconnect and error handling: the body of check/wait/flush.
        if self._depth:
            raise ValueError("called inside a callback: callbacks never nest", None)
        if self._cs != _UP:
            self._advance(wait_ms)
            return
        s = self._s
        try:
            self._round(wait_ms)
            if self._cs != _UP:
                return  # a callback's publish() found the connection gone
            if self._renew:
                self._renew_one()
            if s.want_reconnect and not s.in2_pending() and not s.tx_len and not s.rx_end:
                # QoS 2 messages were left with the broker (table full): a new connection
                # makes it send them again. At once, and not counted as a failure; never
                # while received bytes are still unhandled.
                self._close()
                if not (self._reconnect and self._ever):
                    raise OSError(errno.ECONNRESET, "reconnect to receive deferred QoS 2")
                self._next_try = ticks_ms()
        except (OSError, ProtocolError) as e:
            self._lost(e)

    def _renew_one(self):
        # Send the next subscription to renew (one SUBSCRIBE at a time; _dispatch takes
        # its SUBACK). Refused ones are tried again every backoff_max_ms.
        s = self._s
        if self._rs is not None or s.sub_pending() or ticks_diff(ticks_ms(), self._rs_at) < 0:
            return
        for sub in self._subs:
            if sub[2]:
                pid = s.subscribe([(sub[0], sub[1])])
                if pid > 0:
                    self._rs = sub
                    self._rs_pid = pid
                return
        self._renew = False

    def _round(self, wait_ms):
        s = self._s
        if wait_ms > 0 and self._nagle and self._adapt:
            self._nagle_set(False)  # about to wait for the broker: hold nothing back
        s.tick(ticks_ms())
        self._write()
        if self._read_dispatch() or wait_ms <= 0 or self.sock is None:
            return
        due = s.ping_due_in(ticks_ms())
        if 0 <= due < wait_ms:
            wait_ms = due if due > 0 else 1
        self._interest(s.tx_len > 0)
        compat.wait_io(self._poller, wait_ms)
        s.tick(ticks_ms())
        self._write()
        self._read_dispatch()

    def _nagle_set(self, on):
        # Turn Nagle's algorithm on or off (TCP_NODELAY off or on; turning TCP_NODELAY on
        # sends what Nagle holds, on Linux at once, on lwIP with the next write). A stack
        # without the option (MicroPython's TLS sockets) ends the adaptation. No allocation.
        sock = self.sock
        if sock is None:
            return
        try:
            sock.setsockopt(6, 1, 0 if on else 1)  # IPPROTO_TCP, TCP_NODELAY
            self._nagle = on
        except (OSError, AttributeError):
            self._adapt = False

    def _write(self):
        # Write what the session has queued until the socket would block.
        s = self._s
        sock = self.sock
        while s.tx_len:
            n = write_some(sock, s.tx_buf, s.tx_off, s.tx_len)
            if not n:
                return False
            s.sent(n)
            self._w_rx += 1
        return True

    def _write_all(self, timeout_ms):
        t0 = ticks_ms()
        while not self._write():
            if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                raise OSError(errno.ETIMEDOUT)
            self._interest(True)
            compat.wait_io(self._poller, 50)

    def _interest(self, want_write):
        # Poll for POLLOUT only while something waits to be written.
        p = self._poller
        if want_write != self._want_write and p is not None:
            p.modify(self.sock, _POLL_RW if want_write else _POLL_R)
            self._want_write = want_write

    def _read_dispatch(self):
        # Read what the socket has, handle every complete packet; returns events handled.
        s = self._s
        handled = 0
        for _ in range(8):  # bounded: a flood must not keep check_msg() from returning
            got = 0
            room = s.rx_room
            if room:
                # readinto has no offset: resuming after a partial packet slices the view
                # (one small object); a read at the start of the buffer allocates nothing.
                mv = s.rx_mv if not s.rx_end else s.rx_mv[s.rx_end :]
                got = read_some(self.sock, mv, room)
                if got == 0:
                    raise OSError(errno.ECONNRESET, "connection closed by the broker")
                if got:
                    s.received(got)
                    self._w_rx = 0
            ev = s.next_event()
            while ev:
                handled += 1
                self._dispatch(ev)
                if self.sock is None:
                    return handled  # a callback's publish() lost the connection
                ev = s.next_event()
            if s.tx_len:
                self._write()
            # Not after a short read alone: packets the session held back while its
            # control buffer was full (it answers them once the write above made room)
            # may still be in rx_buf. Stopping there made the soak under load deliver
            # incoming QoS 2 messages twice (the deferred QoS 2 reconnect then decides on
            # a half-handled buffer). After a short read on a plain socket that left
            # nothing unhandled, the socket had no more: another read would only say so (a
            # system call less per wake-up). Not with TLS: records already decrypted wait
            # in the TLS layer, where a poll of the socket cannot see them.
            if not got or got < room and not s.rx_end and not self.ssl:
                break
        return handled

    def _dispatch(self, ev):
        s = self._s
        self._handled += 1
        if ev != _EV_CONNACK:
            self._strikes = 0  # the broker answered on this connection: not a refusal
        if ev == _EV_MESSAGE:
            self._n[_N_RECV] += 1
            p = s.pkt
            cb = self.cb
            if cb is not None:
                self.msg_qos = p.qos
                self.msg_retain = p.retain
                self.msg_dup = p.dup
                mv = s.rx_mv
                t = mv[p.topic_off : p.topic_off + p.topic_len]
                m = mv[p.payload_off : p.payload_off + p.payload_len]
                self._depth += 1
                try:
                    if self.zero_copy:
                        cb(t, m)
                    else:
                        cb(bytes(t), bytes(m))
                finally:
                    self._depth -= 1
        elif ev == _EV_CONNACK:
            _link().connack(self)  # (always under way in mote.link: it is imported)
        elif ev == _EV_SUBACK:
            self._granted = s.rx_buf[s.pkt.codes_off]
            self._ack_pid = s.ack_pid
            sub = self._rs
            if s.ack_pid == self._rs_pid and sub is not None:  # a renewal (None: unsubscribed)
                self._rs = None
                self._rs_pid = 0
                if self._granted != 0x80:
                    sub[2] = 0
                else:
                    sub[2] = 2  # refused: tried again in backoff_max_ms
                    self._n[_N_SUB_REFUSED] += 1
                    self._rs_at = ticks_add(ticks_ms(), self._backoff_max_ms)
                    print("mote: subscription refused on renewal:", sub[0])
                    if not self._reconnect:
                        raise MQTTException(0x80, sub[0])
        elif ev == _EV_UNSUBACK:
            self._ack_pid = s.ack_pid
        elif ev == _EV_PINGRESP:
            self._rtt_ms = ticks_diff(ticks_ms(), s.ping_at)
        elif ev == _EV_DEAD:
            raise OSError(errno.ETIMEDOUT, "keepalive: no PINGRESP")
        elif ev == _EV_DROPPED:
            if self.DEBUG:
                print("mote: dropped an oversize message of", s.drop_len, "bytes")

    # Introspection --------------------------------------------------------------------

    def stats(self):
        """Counters in one dict (allocates; see mote.stats)."""
        from mote.stats import stats

        return stats(self)

    def save_session(self, buf):
        """Write the session (outbox, packet ids, incoming QoS 2 ids) into buf for deep
        sleep or a reset; returns the length. See mote.snapshot."""
        from mote.snapshot import save

        return save(self._s, buf)

    def load_session(self, buf, n=None):
        """Restore what save_session() wrote, before connect(clean_session=False)."""
        from mote.snapshot import load

        load(self._s, buf, n)
