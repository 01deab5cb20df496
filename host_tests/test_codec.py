# codec: golden packets, seeded round trips, length boundaries, truncation, corruption,
# and the allocation check of every outgoing packet type.
from mqttconst import (
    CONNACK,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    UNSUBACK,
)

from mote import codec
from mote.codec import Packet, ProtocolError, decode
from support import Rng, assert_no_alloc, hexb, raises


def enc(fn, *args):
    buf = bytearray(1024)
    n = fn(buf, 0, *args)
    return bytes(buf[:n])


# Golden packets, written from the standard's tables ---------------------------------


def test_connect_minimal_golden():
    got = enc(codec.encode_connect, "mote", True, 60)
    assert got == hexb("10 10 0004 4d515454 04 02 003c 0004 6d6f7465")


def test_connect_with_will_user_password_golden():
    got = enc(codec.encode_connect, b"c", False, 0, b"w/t", b"bye", 1, True, b"u", b"pw")
    # flags: user 80 | password 40 | will retain 20 | will QoS 1 08 | will 04 = ec
    want = "10 1e 0004 4d515454 04 ec 0000 0001 63 0003 772f74 0003 627965 0001 75 0002 7077"
    assert got == hexb(want)


def test_publish_qos0_and_qos1_golden():
    assert enc(codec.encode_publish, b"a/b", b"hello") == hexb("30 0a 0003 612f62 68656c6c6f")
    got = enc(codec.encode_publish, "a/b", "hi", 1, True, True, 7)
    assert got == hexb("3b 09 0003 612f62 0007 6869")


def test_acks_golden():
    assert enc(codec.encode_ack, PUBACK, 7) == hexb("40 02 0007")
    assert enc(codec.encode_ack, PUBREC, 0xFFFF) == hexb("50 02 ffff")
    assert enc(codec.encode_ack, PUBREL, 7) == hexb("62 02 0007")
    assert enc(codec.encode_ack, PUBCOMP, 258) == hexb("70 02 0102")


def test_subscribe_unsubscribe_ping_disconnect_golden():
    got = enc(codec.encode_subscribe, 10, [(b"a/+", 1), ("#", 2)])
    assert got == hexb("82 0c 000a 0003 612f2b 01 0001 23 02")
    assert enc(codec.encode_subscribe, 11, [b"a/+"], True) == hexb("a2 07 000b 0003 612f2b")
    assert enc(codec.encode_empty, PINGREQ) == hexb("c0 00")
    assert enc(codec.encode_empty, DISCONNECT) == hexb("e0 00")


def test_sizes_match_encoders():
    # encode_connect and encode_subscribe size a packet when given None for the buffer.
    n = codec.encode_connect(None, 0, "mote", True, 60)
    assert n == len(enc(codec.encode_connect, "mote", True, 60)) == 18
    assert codec.encode_connect(None, 5, "mote") == 5 + 18
    assert codec.publish_size(3, 5, 0) == 12
    assert codec.publish_size(3, 2, 1) == 11
    assert codec.encode_subscribe(None, 0, 1, [(b"a/+", 1), ("#", 2)]) == 14
    assert codec.encode_subscribe(None, 0, 1, [b"a/+"], True) == 9
    args = (b"c", False, 0, b"w/t", b"bye", 1, True, b"u", b"pw")
    assert codec.encode_connect(None, 0, *args) == len(enc(codec.encode_connect, *args))


def test_decode_server_packets_golden():
    p = Packet()
    assert decode(hexb("20 02 01 00"), 0, 4, p) == 4
    assert p.type == CONNACK and p.session_present and p.rc == 0
    assert decode(hexb("20 02 00 05"), 0, 4, p) == 4 and p.rc == 5 and not p.session_present
    data = hexb("90 05 000a 01 80 02")
    assert decode(data, 0, len(data), p) == 7
    assert p.pid == 10 and bytes(data[p.codes_off : p.codes_off + p.codes_len]) == b"\x01\x80\x02"
    assert decode(hexb("b0 02 000b"), 0, 4, p) == 4 and p.type == UNSUBACK and p.pid == 11
    assert decode(hexb("d0 00"), 0, 2, p) == 2 and p.type == PINGRESP
    assert decode(hexb("62 02 0009"), 0, 4, p) == 4 and p.type == PUBREL and p.pid == 9


def test_decode_publish_fields_are_offsets():
    data = hexb("35 0e 0003 612f62 1234 7061796c6f6164")
    p = Packet()
    assert decode(data, 0, len(data), p) == 16
    assert p.qos == 2 and p.retain and p.dup is False and p.pid == 0x1234
    assert bytes(data[p.topic_off : p.topic_off + p.topic_len]) == b"a/b"
    assert bytes(data[p.payload_off : p.payload_off + p.payload_len]) == b"payload"


# Round trips and boundaries ---------------------------------------------------------


def test_publish_round_trip_seeded():
    rng = Rng(2026)
    buf = bytearray(4096)
    p = Packet()
    for _ in range(200):
        topic = bytes(0x61 + rng.below(26) for _ in range(rng.between(1, 40)))
        msg = rng.bytes(rng.between(0, 600))
        qos = rng.below(3)
        retain = bool(rng.below(2))
        dup = bool(rng.below(2)) and qos > 0
        pid = rng.between(1, 65535) if qos else 0
        n = codec.encode_publish(buf, 0, topic, msg, qos, retain, dup, pid)
        assert n == codec.publish_size(len(topic), len(msg), qos), rng.seed
        assert decode(buf, 0, n, p) == n, rng.seed
        assert bytes(buf[p.topic_off : p.topic_off + p.topic_len]) == topic
        assert bytes(buf[p.payload_off : p.payload_off + p.payload_len]) == msg
        assert (p.qos, p.retain, p.dup, p.pid) == (qos, retain, dup, pid)


def test_ack_round_trip_including_pid_65535():
    p = Packet()
    buf = bytearray(4)
    for t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        for pid in (1, 255, 256, 65535):
            assert codec.encode_ack(buf, 0, t, pid) == 4
            assert decode(buf, 0, 4, p) == 4 and p.type == t and p.pid == pid
    assert raises(ValueError, codec.encode_ack, buf, 0, PUBACK, 0)
    assert raises(ValueError, codec.encode_ack, buf, 0, PUBACK, 65536)


def test_remaining_length_boundaries():
    buf = bytearray(5)
    p = Packet()
    for n, size in (
        (0, 1),
        (127, 1),
        (128, 2),
        (16383, 2),
        (16384, 3),
        (2097151, 3),
        (2097152, 4),
        (268435455, 4),
    ):
        assert codec.packet_size(n) == 1 + size + n
        buf[0] = 0x30
        end = codec.encode_vbi(buf, 1, n)
        assert end == 1 + size
        assert codec.decode_header(buf, 0, end, p) == 1 + size and p.rem_len == n
    assert raises(ValueError, codec.encode_vbi, buf, 1, 268435456)
    assert raises(ValueError, codec.encode_vbi, buf, 1, -1)


def test_every_truncation_needs_more():
    buf = bytearray(400)
    n = codec.encode_publish(buf, 0, b"t/x", b"z" * 300, 1, False, False, 5)
    p = Packet()
    for k in range(n):
        assert decode(buf, 0, k, p) == 0, k
    assert decode(buf, 0, n, p) == n
    for data in (hexb("20 02 00 00"), hexb("90 03 0001 00"), hexb("d0 00")):
        for k in range(len(data)):
            assert decode(data, 0, k, p) == 0


def test_decode_at_an_offset():
    data = b"\xee\xee" + hexb("40 02 0007") + b"\xee"
    p = Packet()
    assert decode(data, 2, 6, p) == 4 and p.pid == 7


def test_a_non_minimal_remaining_length_is_accepted():
    # MQTT 3.1.1 section 2.2.3 does not demand the shortest length field (only MQTT 5
    # does, MQTT-1.5.5-1), as the spec decoder in host_tests also reads it.
    p = Packet()
    assert decode(hexb("b0 82 00 0130"), 0, 5, p) == 5
    assert (p.type, p.hdr_len, p.rem_len, p.pid) == (11, 3, 2, 0x130)


# Malformed input: one error type, a message naming the rule ------------------------


def bad(hexdata):
    data = hexb(hexdata)
    return raises(ProtocolError, decode, data, 0, len(data), Packet()).args[0]


def test_malformed_packets_raise_protocol_error():
    assert "bad type" in bad("00 00")
    assert "bad type" in bad("f0 00")
    assert "bad flags" in bad("41 02 0001")  # PUBACK with flags
    assert "bad flags" in bad("60 02 0001")  # PUBREL needs 0010
    assert "QoS 3" in bad("36 05 0001 61 0001")
    assert "bad length" in bad("30 ff ff ff ff 01")
    assert "bad length" in bad("20 03 00 00 00")  # CONNACK of length 3
    assert "bad length" in bad("40 03 0001 00")
    assert "bad length" in bad("d0 01 00")
    assert "bad pid" in bad("40 02 0000")
    assert "bad pid" in bad("32 05 0001 61 0000")
    assert "bad topic" in bad("30 04 0001 23 00")
    assert "bad topic" in bad("30 04 0001 2b 00")
    assert "empty topic" in bad("30 02 0000")
    assert "short PUBLISH" in bad("30 04 0009 6161")
    assert "short PUBLISH" in bad("30 01 00")
    assert "short PUBLISH" in bad("32 04 0001 61 00")
    assert "DUP with QoS 0" in bad("38 03 0001 61")
    assert "bad CONNACK" in bad("20 02 02 00")
    assert "bad CONNACK" in bad("20 02 01 04")
    assert "bad SUBACK" in bad("90 02 0001")
    assert "bad SUBACK" in bad("90 03 0001 03")
    assert "bad type" in bad("10 00")  # a CONNECT from the server
    assert "bad type" in bad("82 00")


def test_fifth_length_byte_detected_before_it_arrives():
    data = hexb("30 80 80 80 80")
    assert raises(ProtocolError, codec.decode_header, data, 0, 5, Packet())


def test_random_bytes_raise_only_protocol_error():
    rng = Rng(7)
    p = Packet()
    for _ in range(2000):
        data = rng.bytes(rng.between(0, 12))
        try:
            n = decode(data, 0, len(data), p)
        except ProtocolError:
            continue
        assert 0 <= n <= len(data)


# Caller mistakes are ValueError ---------------------------------------------------------


def test_encoder_rejects_bad_arguments():
    buf = bytearray(64)
    assert raises(ValueError, codec.encode_publish, buf, 0, b"a", b"", 3, False, False, 1)
    assert raises(ValueError, codec.encode_publish, buf, 0, b"a", b"", 1, False, False, 0)
    assert raises(ValueError, codec.encode_publish, buf, 0, b"a", b"", 0, False, True)
    assert raises(ValueError, codec.encode_publish, buf, 0, b"a", b"x" * 100, 0)
    assert raises(
        ValueError, codec.encode_connect, buf, 0, "c", True, 0, None, None, 0, False, None, b"pw"
    )
    assert raises(ValueError, codec.encode_connect, buf, 0, "", False)
    assert raises(ValueError, codec.encode_connect, buf, 0, "c", True, 70000)
    assert raises(ValueError, codec.encode_subscribe, buf, 0, 1, [])
    assert raises(ValueError, codec.encode_subscribe, buf, 0, 1, [(b"a", 3)])
    assert raises(ValueError, codec.encode_subscribe, buf, 0, 1, [], True)
    assert raises(ValueError, codec.encode_subscribe, buf, 0, 1, [b""], True)
    assert raises(ValueError, codec.encode_empty, buf, 63, PINGREQ)


def test_dup_bit_marks_a_retransmission():
    buf = bytearray(32)
    n = codec.encode_publish(buf, 0, b"a", b"x", 1, False, False, 3)
    buf[0] |= 0x08
    p = Packet()
    assert decode(buf, 0, n, p) == n and p.dup and p.pid == 3


# Allocation (MicroPython, heap locked) -------------------------------------------------

_BUF = bytearray(256)
_TOPIC = b"mote/abc/telemetry"
_MSG = bytearray(b"x" * 32)
_PKT = Packet()


def _encode_all():
    b = _BUF
    off = codec.encode_publish(b, 0, _TOPIC, _MSG, 0, False, False, 0)
    q1 = off
    off = codec.encode_publish(b, off, _TOPIC, _MSG, 1, True, False, 65535)
    off = codec.encode_publish(b, off, _TOPIC, _MSG, 2, False, True, 2)
    off = codec.encode_ack(b, off, PUBACK, 1)
    off = codec.encode_ack(b, off, PUBREC, 2)
    off = codec.encode_ack(b, off, PUBREL, 3)
    off = codec.encode_ack(b, off, PUBCOMP, 4)
    off = codec.encode_empty(b, off, PINGREQ)
    off = codec.encode_empty(b, off, DISCONNECT)
    b[q1] |= 0x08
    return off


def _decode_all():
    # Everything a server may also send: the three PUBLISH packets and the four acks.
    n = _encode_all() - 4  # less PINGREQ and DISCONNECT, which only clients send
    off = 0
    while off < n:
        off += decode(_BUF, off, n, _PKT)


def test_encoding_outgoing_packets_allocates_nothing():
    assert_no_alloc(_encode_all)


def test_decoding_publish_and_acks_allocates_nothing():
    assert_no_alloc(_decode_all)
