# session: QoS 0/1/2 flows both ways, packet ids, outbox ring, reconnect resend, keepalive
# across the tick wrap, oversize skipping, protocol errors, snapshots, and allocation.
from mqttconst import (
    CONNECTED,
    ERROR,
    EV_CONNACK,
    EV_DEAD,
    EV_DROPPED,
    EV_MESSAGE,
    EV_PINGRESP,
    EV_PUBLISHED,
    EV_SUBACK,
    EV_UNSUBACK,
    NO_ROOM,
    NOT_CONNECTED,
)

from mote import codec, snapshot, stats
from mote.codec import ProtocolError
from mote.session import Session
from support import FakeClock, Rng, assert_no_alloc, hexb, raises

CONNACK_OK = hexb("20 02 00 00")


def drain(s):
    """Everything the session wants written, as bytes (the fake wire)."""
    out = bytearray()
    while s.tx_len:
        out += bytes(memoryview(s.tx_buf)[s.tx_off : s.tx_off + s.tx_len])
        s.sent(s.tx_len)
    return bytes(out)


def feed(s, data):
    """Copy bytes into the session's receive buffer, as a driver's read would; returns
    how many fitted."""
    k = min(len(data), s.rx_room)
    if k:
        s.rx_buf[s.rx_end : s.rx_end + k] = data[:k] if k < len(data) else data
        s.received(k)
    return k


def events(s, data):
    """Feed data (in as many pieces as the buffer takes) and collect the events."""
    got = []
    pos = 0
    while True:
        if pos < len(data):
            pos += feed(s, data[pos:])
        ev = s.next_event()
        while ev:
            got.append(ev)
            ev = s.next_event()
        if pos >= len(data):
            return got
        drain(s)


def connected(**kw):
    s = Session(**kw)
    s.set_connect("mote-test", True, 0)
    s.connect(0)
    assert drain(s)[:1] == b"\x10"
    assert events(s, CONNACK_OK) == [EV_CONNACK]
    assert s.state == CONNECTED and s.connack_rc == 0
    return s


def packets(data):
    """Split a byte stream into (type, flags, pid or None, whole packet) tuples."""
    out = []
    p = codec.Packet()
    off = 0
    while off < len(data):
        h = codec.decode_header(data, off, len(data), p)
        n = h + p.rem_len
        pid = None
        if p.type in (3,) and p.flags & 6:
            tl = (data[off + h] << 8) | data[off + h + 1]
            pid = (data[off + h + 2 + tl] << 8) | data[off + h + 3 + tl]
        elif p.type in (4, 5, 6, 7, 8, 10, 11):
            pid = (data[off + h] << 8) | data[off + h + 1]
        out.append((p.type, p.flags, pid, data[off : off + n]))
        off += n
    return out


def test_connect_then_refused_connack_reports_the_code():
    s = Session()
    s.set_connect("c", True, 30, None, None, 0, False, "u", "p")
    s.connect(0)
    wire = drain(s)
    assert wire == hexb("10 13 0004 4d515454 04 c2 001e 0001 63 0001 75 0001 70")
    assert events(s, hexb("20 02 00 05")) == [EV_CONNACK]
    assert s.connack_rc == 5 and s.state != CONNECTED


def test_qos0_publish_is_one_chunk_and_dropped_when_disconnected():
    s = Session()
    assert s.publish(b"a/b", b"hello") == NOT_CONNECTED
    s = connected()
    assert s.publish(b"a/b", b"hello") == 0
    assert s.tx_len == 12  # one packet, one write
    assert drain(s) == hexb("30 0a 0003 612f62 68656c6c6f")


def test_large_qos0_payload_goes_from_the_callers_object():
    s = connected(tx_size=64)
    msg = bytes(range(200))
    assert s.publish(b"t", msg) == 0
    assert s.holds_caller_data()
    first = bytes(memoryview(s.tx_buf)[s.tx_off : s.tx_off + s.tx_len])
    assert first == hexb("30 cb01 0001 74")
    s.sent(s.tx_len)
    assert s.tx_buf is msg
    assert drain(s) == msg and not s.holds_caller_data()


def test_qos1_flow_completes_on_puback():
    s = connected()
    assert s.publish(b"t", b"x", 1) == 1
    assert drain(s) == hexb("32 06 0001 74 0001 78")
    assert s.pending() == 1
    assert events(s, hexb("40 02 0001")) == [EV_PUBLISHED]
    assert s.ack_pid == 1 and s.pending() == 0


def test_qos2_flow_pubrec_pubrel_pubcomp():
    s = connected()
    assert s.publish(b"t", b"x", 2) == 1
    assert drain(s) == hexb("34 06 0001 74 0001 78")
    assert events(s, hexb("50 02 0001")) == []
    assert drain(s) == hexb("62 02 0001")
    assert s.pending() == 1
    assert events(s, hexb("70 02 0001")) == [EV_PUBLISHED]
    assert s.pending() == 0


def test_incoming_qos1_is_acked_and_qos2_delivered_exactly_once():
    s = connected()
    assert events(s, hexb("32 06 0001 74 0009 78")) == [EV_MESSAGE]
    assert s.pkt.qos == 1 and s.pkt.pid == 9
    assert drain(s) == hexb("40 02 0009")
    q2 = hexb("34 06 0001 74 000a 78")
    assert events(s, q2) == [EV_MESSAGE]
    assert drain(s) == hexb("50 02 000a")
    dup = hexb("3c 06 0001 74 000a 78")
    assert events(s, dup) == []  # remembered: answered, not delivered again
    assert drain(s) == hexb("50 02 000a") and s._n[4] == 1  # _n[4]: duplicates
    assert events(s, hexb("62 02 000a")) == []
    assert drain(s) == hexb("70 02 000a")
    assert events(s, q2) == [EV_MESSAGE]  # after PUBREL the id is new again


def test_message_event_points_into_the_receive_buffer():
    s = connected()
    assert events(s, hexb("31 0a 0003 612f62 68656c6c6f")) == [EV_MESSAGE]
    p = s.pkt
    assert bytes(s.rx_buf[p.topic_off : p.topic_off + p.topic_len]) == b"a/b"
    assert bytes(s.rx_buf[p.payload_off : p.payload_off + p.payload_len]) == b"hello"
    assert p.retain and p.qos == 0


def test_whole_or_byte_at_a_time_gives_the_same_events():
    stream = (
        hexb("31 0a 0003 612f62 68656c6c6f")
        + hexb("32 06 0001 74 0009 78")
        + hexb("d0 00")
        + hexb("34 06 0001 74 000a 78")
        + hexb("62 02 000a")
    )
    rng = Rng(11)
    for mode in ("whole", "bytes", "random"):
        s = connected(rx_size=32)
        s.ping(0)
        drain(s)
        got = []
        pos = 0
        while pos < len(stream):
            k = len(stream) if mode == "whole" else 1 if mode == "bytes" else rng.between(1, 7)
            pos += feed(s, stream[pos : pos + k])
            ev = s.next_event()
            while ev:
                got.append((ev, s.pkt.pid))
                ev = s.next_event()
            drain(s)
        assert got == [(EV_MESSAGE, 0), (EV_MESSAGE, 9), (EV_PINGRESP, 9), (EV_MESSAGE, 10)], mode


def test_packet_ids_start_at_1_wrap_and_skip_ids_in_use():
    s = connected(max_inflight=4)
    assert s.publish(b"t", b"", 1) == 1
    assert s.subscribe([(b"a", 0)]) == 2
    s._pid = 65534
    assert s.publish(b"t", b"", 1) == 65535
    assert s.publish(b"t", b"", 1) == 3  # 1 and 2 are in use
    drain(s)


def test_max_inflight_and_a_full_outbox_say_no_room():
    s = connected(max_inflight=2)
    assert s.publish(b"t", b"x", 1) == 1
    assert s.publish(b"t", b"x", 1) == 2
    assert s.publish(b"t", b"x", 1) == NO_ROOM
    drain(s)
    events(s, hexb("40 02 0001"))
    assert s.publish(b"t", b"x", 1) == 3
    s = connected(outbox_size=32)
    assert s.publish(b"t", b"x" * 20, 1) == 1
    assert s.publish(b"t", b"x" * 20, 1) == NO_ROOM
    assert raises(ValueError, s.publish, b"t", b"x" * 40, 1)


def test_outbox_ring_reuses_space_with_out_of_order_completion():
    s = connected(max_inflight=4, outbox_size=45)  # each packet is 14 bytes
    for pid in (1, 2, 3):
        assert s.publish(b"t", b"0123456", 1) == pid
    drain(s)
    events(s, hexb("40 02 0002"))  # a hole in the middle: nothing reclaimed yet
    assert s.pending() == 2 and s.publish(b"t", b"0123456", 1) == NO_ROOM
    events(s, hexb("40 02 0001"))  # oldest done: 1 and 2 reclaimed
    assert s.publish(b"t", b"abcdefg", 1) == 4  # wraps to the front
    drain(s)
    events(s, hexb("40 02 0003"))
    events(s, hexb("40 02 0004"))
    assert s.pending() == 0 and stats.outbox_free(s) == 45


def test_reconnect_resends_qos1_with_dup_and_resumes_qos2():
    s = connected()
    s.publish(b"t", b"a", 1)  # pid 1: sent, no PUBACK
    s.publish(b"t", b"b", 2)  # pid 2: PUBREC came, PUBREL sent
    s.publish(b"t", b"c", 2)  # pid 3: sent, nothing back
    drain(s)
    events(s, hexb("50 02 0002"))
    assert drain(s) == hexb("62 02 0002")
    s.connection_lost()
    s.publish(b"t", b"d", 1)  # pid 4: queued while disconnected, never sent
    s.connect(0)
    assert drain(s)[:1] == b"\x10"  # CONNECT first, nothing else before CONNACK
    events(s, hexb("20 02 01 00"))
    got = packets(drain(s))
    assert [(t, f, pid) for t, f, pid, _ in got] == [
        (3, 0b1010, 1),  # QoS 1 with DUP
        (6, 0b0010, 2),  # PUBREL resumes pid 2
        (3, 0b1100, 3),  # QoS 2 with DUP
        (3, 0b0010, 4),  # first transmission: no DUP
    ]
    assert s._n[2] == 3  # _n[2]: resent
    events(s, hexb("40 02 0001 70 02 0002 50 02 0003"))
    assert drain(s) == hexb("62 02 0003")
    assert events(s, hexb("70 02 0003 40 02 0004")) == [EV_PUBLISHED, EV_PUBLISHED]
    assert s.pending() == 0


def test_incoming_qos2_ids_survive_a_reconnect_with_session_present():
    s = connected()
    events(s, hexb("34 06 0001 74 0005 78"))
    drain(s)
    s.connection_lost()
    s.connect(0)
    drain(s)
    events(s, hexb("20 02 01 00"))
    assert events(s, hexb("3c 06 0001 74 0005 78")) == []  # redelivered: not again
    s.connection_lost()
    s.connect(0)
    drain(s)
    events(s, hexb("20 02 00 00"))  # no session: the broker forgot, so do we
    assert events(s, hexb("34 06 0001 74 0005 78")) == [EV_MESSAGE]


def test_subscribe_and_unsubscribe_acks():
    s = connected()
    pid = s.subscribe([(b"a/+", 1), (b"b", 2)])
    assert drain(s) == hexb("82 0c 0001 0003 612f2b 01 0001 62 02")
    assert s.subscribe([(b"c", 0)]) == NO_ROOM  # one at a time
    assert events(s, hexb("90 04 0001 01 80")) == [EV_SUBACK]
    assert s.ack_pid == pid and s.rx_buf[s.pkt.codes_off + 1] == 0x80
    pid = s.subscribe([b"a/+"], True)
    drain(s)
    assert events(s, hexb("b0 02 0002")) == [EV_UNSUBACK] and s.ack_pid == pid


def test_keepalive_pings_when_idle_and_declares_death_across_the_wrap():
    clock = FakeClock(before_wrap_ms=3000)
    s = Session()
    s.set_connect("k", True, 2)
    s.connect(clock.now)
    drain(s)
    events(s, CONNACK_OK)
    s.tick(clock.now)
    assert s.ping_due_in(clock.now) == 2000
    s.tick(clock.advance(1999))
    assert not s.tx_len
    s.tick(clock.advance(1))
    assert drain(s) == hexb("c0 00")
    assert events(s, hexb("d0 00")) == [EV_PINGRESP]
    s.tick(clock.now)
    s.tick(clock.advance(2000))  # past the wrap now
    assert drain(s) == hexb("c0 00")
    s.tick(clock.advance(1999))
    assert s.state == CONNECTED
    s.tick(clock.advance(1))
    assert s.state == ERROR
    assert s.next_event() == EV_DEAD
    assert raises(ProtocolError, s.next_event)


def test_oversize_publish_is_skipped_acked_and_the_stream_continues():
    s = connected(rx_size=64)
    big = bytearray(300)
    n = codec.encode_publish(big, 0, b"big", b"z" * 280, 1, False, False, 77)
    stream = bytes(big[:n]) + hexb("30 05 0001 74 6f6b")
    got = []
    pos = 0
    while pos < len(stream):
        pos += feed(s, stream[pos : pos + 50])
        ev = s.next_event()
        while ev:
            got.append(ev)
            ev = s.next_event()
    assert got == [EV_DROPPED, EV_MESSAGE]
    assert s.dropped == 1 and s.drop_len == n
    assert drain(s) == hexb("40 02 004d")  # acknowledged: no endless redelivery
    p = s.pkt
    assert bytes(s.rx_buf[p.payload_off : p.payload_off + p.payload_len]) == b"ok"


def test_protocol_violations_raise_and_keep_the_outbox():
    for bad in (
        "40 02 0009",
        "50 02 0009",
        "70 02 0001",
        "90 03 0009 00",
        "b0 02 0009",
        "20 02 00 00",
        "ff ff",
    ):
        s = connected()
        s.publish(b"t", b"x", 1)
        drain(s)
        e = raises(ProtocolError, events, s, hexb(bad))
        assert s.state == ERROR, bad
        assert e.args[0]
        assert s.pending() == 1  # nothing queued is lost
        s.connection_lost()
        s.connect(0)
        drain(s)
        events(s, CONNACK_OK)
        assert packets(drain(s))[0][2] == 1  # and it goes out again


def test_pubrel_for_an_unknown_id_still_gets_pubcomp():
    s = connected()
    assert events(s, hexb("62 02 0033")) == []
    assert drain(s) == hexb("70 02 0033")


def test_snapshot_round_trip_restores_outbox_ids_and_qos2_table():
    s = connected()
    s.publish(b"t/1", b"one", 1)
    s.publish(b"t/2", b"two", 2)
    drain(s)
    events(s, hexb("50 02 0002"))
    drain(s)
    events(s, hexb("34 06 0001 74 0009 78"))
    drain(s)
    buf = bytearray(256)
    n = snapshot.save(s, buf)
    assert n == snapshot.size(s)
    r = Session()
    r.set_connect("mote-test", False)
    snapshot.load(r, buf, n)
    assert r.pending() == 2
    r.connect(0)
    drain(r)
    events(r, hexb("20 02 01 00"))
    got = packets(drain(r))
    assert [(t, pid) for t, f, pid, _ in got] == [(3, 1), (6, 2)]
    assert got[0][1] & 0x08  # sent before the snapshot: DUP
    assert r.publish(b"t", b"x", 1) == 3
    assert events(r, hexb("3c 06 0001 74 0009 78")) == []


def test_a_snapshot_loads_from_a_memoryview_or_bytes_too():
    # RTC memory and file reads hand over a memoryview or bytes, not a bytearray.
    s = connected()
    s.publish(b"t/1", b"one", 1)
    drain(s)
    buf = bytearray(128)
    n = snapshot.save(s, buf)
    for given in (memoryview(buf), bytes(buf)):
        r = Session()
        r.set_connect("mote-test", False)
        snapshot.load(r, given, n)
        assert r.pending() == 1


def test_corrupt_or_foreign_snapshots_are_rejected_and_change_nothing():
    s = connected()
    s.publish(b"t", b"x", 1)
    buf = bytearray(64)
    n = snapshot.save(s, buf)
    r = Session()
    r.set_connect("r")
    r.connect(0)
    drain(r)
    events(r, CONNACK_OK)
    r.publish(b"keep", b"me", 1)
    r.connection_lost()
    for i in range(n):
        bad = bytearray(buf[:n])
        bad[i] ^= 0x40
        assert raises(ValueError, snapshot.load, r, bad, n)
    assert raises(ValueError, snapshot.load, r, buf, n - 1)
    assert raises(ValueError, snapshot.load, r, b"JUNK" + bytes(20))
    small = Session(max_inflight=1)
    two = connected()
    two.publish(b"a", b"1", 1)
    two.publish(b"a", b"2", 1)
    m = snapshot.save(two, buf)
    assert "max_inflight" in raises(ValueError, snapshot.load, small, buf, m).args[0]
    assert r.pending() == 1 and r._s_pid[r._first] == 1  # untouched


# Allocation (MicroPython, heap locked) -------------------------------------------

_S = None
_ACKS = {}


def _setup():
    global _S
    _S = connected()
    _S.set_connect("alloc", True, 10)


def _flow_q1():
    s = _S
    pid = s.publish(b"mote/x/telemetry", b"0123456789abcdef0123456789abcdef", 1)
    while s.tx_len:
        s.sent(s.tx_len)
    b = s.rx_buf
    b[0] = 0x40
    b[1] = 2
    b[2] = pid >> 8
    b[3] = pid & 0xFF
    s.received(4)
    while s.next_event():
        pass


def _flow_q2():
    s = _S
    pid = s.publish(b"mote/x/telemetry", b"0123456789abcdef0123456789abcdef", 2)
    for first in (0x50, 0x70):
        while s.tx_len:
            s.sent(s.tx_len)
        b = s.rx_buf
        b[0] = first
        b[1] = 2
        b[2] = pid >> 8
        b[3] = pid & 0xFF
        s.received(4)
        while s.next_event():
            pass
    while s.tx_len:
        s.sent(s.tx_len)


def _qos0():
    s = _S
    s.publish(b"mote/x/telemetry", b"0123456789abcdef0123456789abcdef", 0)
    while s.tx_len:
        s.sent(s.tx_len)


# What the locked helpers saw, written in place (no allocation): events in order, then
# the first byte of each chunk the session gave to write.
_SEEN = bytearray(16)
_N = [0]


def _seen(v):
    _SEEN[_N[0]] = v
    _N[0] += 1


def _events_and_writes():
    s = _S
    ev = s.next_event()
    while ev:
        _seen(ev)
        ev = s.next_event()
    while s.tx_len:
        _seen(s.tx_buf[s.tx_off])
        s.sent(s.tx_len)


def _incoming():
    # PUBLISH QoS 2, PUBREL, PINGRESP, and a QoS 1 PUBLISH.
    _N[0] = 0
    feed(_S, _IN)
    _events_and_writes()


_IN = hexb("34 06 0001 74 0042 78 62 02 0042 d0 00 32 06 0001 74 0043 78")

_SUB = [0, 0]  # the packet ids of the SUBSCRIBE and UNSUBSCRIBE under test


def _subscribe_both():
    # Outside the lock: subscribe() encodes filters given in a list (allocates by design).
    s = _S
    _SUB[0] = s.subscribe([(b"a/b", 1)])
    _SUB[1] = s.subscribe([b"a/c"], True)
    while s.tx_len:
        s.sent(s.tx_len)


def _suback():
    s = _S
    _N[0] = 0
    b = s.rx_buf
    pid = _SUB[0]
    b[0] = 0x90
    b[1] = 3
    b[2] = pid >> 8
    b[3] = pid & 0xFF
    b[4] = 1
    s.received(5)
    _events_and_writes()
    _seen(s.ack_pid == pid)
    pid = _SUB[1]
    b[0] = 0xB0
    b[1] = 2
    b[2] = pid >> 8
    b[3] = pid & 0xFF
    s.received(4)
    _events_and_writes()
    _seen(s.ack_pid == pid)
    _seen(s.sub_pending() or s.sub_pending(True))


_CLK = [0]


def _keepalive():
    s = _S
    _N[0] = 0
    s.keepalive_ms = 1000
    t = _CLK[0]
    s.tick(t)
    s.tick(t + 1000)  # ping due
    _seen(s.ping_out)
    _events_and_writes()
    s.rx_buf[0] = 0xD0
    s.rx_buf[1] = 0
    s.received(2)
    _events_and_writes()
    _seen(s.ping_out)
    s.tick(t + 1500)
    s.keepalive_ms = 0
    _CLK[0] = t + 2000  # the next run starts after this one: its ping is due again


def test_whole_qos1_and_qos2_flows_allocate_nothing():
    _setup()
    assert_no_alloc(_flow_q1)
    assert_no_alloc(_flow_q2)
    assert _S.pending() == 0


def test_qos0_publish_allocates_nothing():
    _setup()
    assert_no_alloc(_qos0)


def test_incoming_publish_pubrel_pingresp_allocate_nothing():
    _setup()
    assert_no_alloc(_incoming)
    # QoS 2 message, PINGRESP, QoS 1 message; then PUBREC, and PUBCOMP + PUBACK.
    assert bytes(_SEEN[: _N[0]]) == bytes([EV_MESSAGE, EV_PINGRESP, EV_MESSAGE, 0x50, 0x70])


def test_suback_unsuback_allocate_nothing():
    _setup()
    assert_no_alloc(_suback, before=_subscribe_both)
    assert bytes(_SEEN[: _N[0]]) == bytes([EV_SUBACK, 1, EV_UNSUBACK, 1, 0])


def test_keepalive_path_allocates_nothing():
    _setup()
    assert_no_alloc(_keepalive)
    # PINGREQ queued and written (0xC0), PINGRESP handled, nothing outstanding after.
    assert bytes(_SEEN[: _N[0]]) == bytes([1, 0xC0, EV_PINGRESP, 0])


def _q2(pid):
    return bytes([0x34, 6, 0, 1, 0x74, pid >> 8, pid & 0xFF, 0x78])


def test_full_qos2_table_with_a_persistent_session_defers_to_the_broker():
    s = Session(qos2_in=2)
    s.set_connect("p", False)
    s.connect(0)
    drain(s)
    events(s, CONNACK_OK)
    assert events(s, _q2(1) + _q2(2)) == [EV_MESSAGE, EV_MESSAGE]
    assert events(s, _q2(3)) == []  # no room: not delivered, not acknowledged
    assert drain(s) == hexb("50 02 0001 50 02 0002")
    assert s.want_reconnect and s._n[5] == 1 and s.in2_pending() == 2  # _n[5]: deferred
    events(s, hexb("62 02 0001 62 02 0002"))
    assert s.in2_pending() == 0  # drained: the driver now reconnects
    s.connection_lost()
    assert not s.want_reconnect
    s.connect(0)
    drain(s)
    events(s, hexb("20 02 01 00"))
    assert events(s, _q2(3)) == [EV_MESSAGE]  # the broker sent it again


def test_full_qos2_table_with_a_clean_session_evicts_and_delivers():
    s = connected(qos2_in=2)
    assert events(s, _q2(1) + _q2(2) + _q2(3)) == [EV_MESSAGE] * 3
    assert drain(s) == hexb("50 02 0001 50 02 0002 50 02 0003")
    assert not s.want_reconnect and s.in2_pending() == 2


def test_publish_checks_each_new_topic_even_after_a_valid_one():
    s = connected()
    assert s.publish(b"ok/topic", b"x") == 0
    assert raises(ValueError, s.publish, b"bad/#", b"x")
    assert raises(ValueError, s.publish, bytearray(b"bad/+"), b"x", 1)
    assert s.publish(b"ok/topic", b"y") == 0
    assert s.pending() == 0


def test_publish_refuses_every_ill_formed_topic_before_it_reaches_the_outbox():
    # An empty topic, NUL, a lone surrogate or bytes that are not UTF-8 would make the
    # broker close the connection on every resend: they never enter the outbox.
    s = connected()
    for bad in (b"", b"a\x00b", b"a/\xed\xa0\x80", b"\xff/x", b"\xc3"):
        for qos in (0, 1, 2):
            assert raises(ValueError, s.publish, bad, b"x", qos)
    assert s.pending() == 0 and drain(s) == b""
    assert s.publish(b"caf\xc3\xa9", b"x", 1) == 1
