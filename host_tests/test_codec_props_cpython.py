# codec properties (CPython only: hypothesis). Round trips of every packet type, every
# encoder cross-checked against spec_decoder (written from the standard's tables, not from
# the codec), and random or mutated byte streams fed to codec.decode and to a connected
# Session in random-sized chunks: only ProtocolError may escape, every loop is bounded and
# must make progress, and no read may fall outside the bytes received so far.
#
# Hypothesis runs derandomized (the examples are the same on every run) with a bounded
# number of examples; a failure prints the falsifying example and a @reproduce_failure
# blob. MOTE_PROPS_EXAMPLES=n raises the count for a longer local run.
import os
import random

import mqttconst
import pytest
import spec_decoder
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from mqttconst import (
    CONNACK,
    CONNECTED,
    DISCONNECT,
    ERROR,
    EV_CONNACK,
    EV_DROPPED,
    EV_MESSAGE,
    EV_PINGRESP,
    EV_PUBLISHED,
    EV_SUBACK,
    EV_UNSUBACK,
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    UNSUBACK,
)
from spec_decoder import SpecError
from test_session import feed

from mote import codec
from mote.codec import Packet, ProtocolError
from mote.session import Session

settings.register_profile(
    "mote-props",
    derandomize=True,
    max_examples=int(os.environ.get("MOTE_PROPS_EXAMPLES", "60")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROPS = settings.get_profile("mote-props")
PROPS_MANY = settings(PROPS, max_examples=5 * PROPS.max_examples)  # the fast, wide ones

CLIENT_ONLY = ("CONNECT", "SUBSCRIBE", "UNSUBSCRIBE", "PINGREQ", "DISCONNECT")
SUBACK_CODES = (0x00, 0x01, 0x02, 0x80)
RL_BOUNDARIES = (0, 1, 127, 128, 16383, 16384)


def h(s):
    return bytes.fromhex(s)


# Packets written from the standard (section 2.2.3 and chapter 3), not with the codec --------


def vbi(n):
    """Remaining length, 7 bits a byte, least significant first, continuation bit 0x80."""
    out = bytearray()
    while True:
        n, d = divmod(n, 128)
        out.append(d | 0x80 if n else d)
        if not n:
            return bytes(out)


def u16(n):
    return bytes((n >> 8, n & 0xFF))


def std_publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    body = u16(len(topic)) + topic + (u16(pid) if qos else b"") + payload
    return bytes((0x30 | dup << 3 | qos << 1 | retain,)) + vbi(len(body)) + body


def std_connack(session_present, rc):
    return bytes((0x20, 2, 1 if session_present else 0, rc))


def std_ack(ptype, pid):
    return bytes((ptype << 4 | (2 if ptype == PUBREL else 0), 2)) + u16(pid)


def std_suback(pid, codes):
    body = u16(pid) + bytes(codes)
    return b"\x90" + vbi(len(body)) + body


PINGRESP = h("d0 00")


# Guarded buffers: a read outside the window is an error the code under test cannot catch --


class OutOfBounds(AssertionError):
    pass


class Guarded(bytearray):
    """A bytearray whose integer reads must fall in [lo, hi): the bytes that have arrived.
    `window`, when set, is a callable giving (lo, hi) at the time of the read."""

    def __init__(self, data):
        super().__init__(data)
        self.lo = 0
        self.hi = len(self)
        self.window = None

    def __getitem__(self, i):
        if isinstance(i, int):
            lo, hi = self.window() if self.window else (self.lo, self.hi)
            if not lo <= i < hi:
                raise OutOfBounds("read of index %d outside [%d, %d)" % (i, lo, hi))
        return bytearray.__getitem__(self, i)


def check_packet(pkt, start, n):
    """Every offset a decoded Packet holds lies inside buf[start:start+n]."""
    end = start + n
    assert 2 <= pkt.hdr_len <= 5 and pkt.hdr_len + pkt.rem_len == n
    body = start + pkt.hdr_len
    if pkt.type == PUBLISH:
        assert pkt.topic_off == body + 2 and pkt.topic_len >= 1
        assert pkt.topic_off + pkt.topic_len + (2 if pkt.qos else 0) == pkt.payload_off
        assert pkt.payload_len >= 0 and pkt.payload_off + pkt.payload_len == end
        assert pkt.qos in (0, 1, 2)
        assert (1 <= pkt.pid <= 65535) if pkt.qos else pkt.pid == 0
    elif pkt.type == SUBACK:
        assert pkt.codes_off == body + 2 and pkt.codes_len >= 1
        assert pkt.codes_off + pkt.codes_len == end
        assert 1 <= pkt.pid <= 65535
    elif pkt.type in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
        # rem_len, not n: 3.1.1 allows a longer (non-minimal) length field
        assert 1 <= pkt.pid <= 65535 and pkt.rem_len == 2
    else:
        assert pkt.type in (CONNACK, mqttconst.PINGRESP)


def decode_one(data):
    """codec.decode of the packet at data[0:] in a guarded buffer of exactly that size."""
    g = Guarded(data)
    pkt = Packet()
    n = codec.decode(g, 0, len(g), pkt)
    if n:
        check_packet(pkt, 0, n)
    return n, pkt, g


def decode_stream(data, step=None):
    """Decode data as a stream of packets, all at once or arriving `step` bytes at a time.
    Returns ([(type, length), ...], the ProtocolError message or None)."""
    g = Guarded(data)
    pkt = Packet()
    off = 0
    avail = len(data) if step is None else 0
    out = []
    # Each round consumes a packet (2 bytes or more) or lets at least one byte arrive.
    for _ in range(2 * len(data) + 2):
        g.lo, g.hi = off, avail
        try:
            n = codec.decode(g, off, avail, pkt)
        except ProtocolError as e:
            assert len(e.args) == 2 and isinstance(e.args[0], str)
            return out, e.args[0]
        if n:
            assert 2 <= n <= avail - off
            check_packet(pkt, off, n)
            out.append((pkt.type, n))
            off += n
        elif avail == len(data):
            return out, None
        else:
            avail = min(len(data), avail + step)
    raise AssertionError("decode loop made no progress")


# Strategies ---------------------------------------------------------------------------------

_CHAR = st.one_of(
    st.sampled_from("az09_-$ .é€ü中𝄞🙂"),  # 1-, 2-, 3- and 4-byte UTF-8
    st.characters(codec="utf-8", exclude_characters="#+/\x00"),
)
_LEVEL = st.text(_CHAR, max_size=8)
# Never empty: either one level of 1.. characters or 2.. levels (so at least one "/").
topic_names = st.one_of(
    st.text(_CHAR, min_size=1, max_size=300),
    st.lists(_LEVEL, min_size=2, max_size=5).map("/".join),
)
short_topics = st.one_of(
    st.text(_CHAR, min_size=1, max_size=3),
    st.lists(st.text(_CHAR, max_size=3), min_size=2, max_size=3).map("/".join),
)


@st.composite
def topic_filters(draw):
    levels = draw(st.lists(st.one_of(_LEVEL, st.just("+")), min_size=1, max_size=5))
    if draw(st.booleans()):
        levels.append("#")
    f = "/".join(levels)
    return f or "#"


pids = st.one_of(st.integers(1, 65535), st.sampled_from((1, 255, 256, 65535)))
qoss = st.integers(0, 2)
client_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


def payload_of(draw, n):
    if n <= 256:
        return draw(st.binary(min_size=n, max_size=n))
    return random.Random(draw(st.integers(0, 2**32))).randbytes(n)


@st.composite
def publishes(draw):
    topic = draw(topic_names)
    tb = topic.encode()
    qos = draw(qoss)
    fixed = 2 + len(tb) + (2 if qos else 0)
    kind = draw(st.sampled_from(("small", "large", "boundary")))
    if kind == "small":
        n = draw(st.integers(0, 64))
    elif kind == "large":
        n = draw(st.integers(0, 70000))
    else:  # remaining length exactly at (or one past) a length-byte boundary
        n = max(0, draw(st.sampled_from(RL_BOUNDARIES)) - fixed)
    return dict(
        topic=topic,
        payload=payload_of(draw, n),
        qos=qos,
        retain=draw(st.booleans()),
        dup=draw(st.booleans()) if qos else False,
        pid=draw(pids) if qos else 0,
        as_str=draw(st.booleans()),
    )


@st.composite
def server_packets(draw, max_payload=40):
    """One valid server-to-client packet, built from the standard's layouts."""
    kind = draw(st.sampled_from(("PUBLISH", "ACK", "CONNACK", "SUBACK", "UNSUBACK", "PING")))
    if kind == "PUBLISH":
        qos = draw(qoss)
        return std_publish(
            draw(short_topics).encode(),
            draw(st.binary(max_size=max_payload)),
            qos,
            draw(st.booleans()),
            draw(st.booleans()) if qos else False,
            draw(pids) if qos else 0,
        )
    if kind == "ACK":
        t = draw(st.sampled_from((PUBACK, PUBREC, PUBREL, PUBCOMP)))
        return std_ack(t, draw(pids))
    if kind == "CONNACK":
        rc = draw(st.integers(0, 5))
        return std_connack(draw(st.booleans()) if not rc else False, rc)
    if kind == "SUBACK":
        return std_suback(
            draw(pids), draw(st.lists(st.sampled_from(SUBACK_CODES), min_size=1, max_size=8))
        )
    if kind == "UNSUBACK":
        return std_ack(UNSUBACK, draw(pids))
    return PINGRESP


@st.composite
def mutations(draw, base):
    """base with 1..4 edits: bit flips (often in the fixed header), byte overwrites,
    insertions, deletions and a truncation."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "truncate")))
        if op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
            continue
        if not data:
            continue
        i = draw(st.one_of(st.integers(0, min(5, len(data) - 1)), st.integers(0, len(data) - 1)))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 4))]
        else:
            del data[i:]
    return bytes(data)


# 1. Round trips through codec.decode ------------------------------------------------------


@PROPS
@given(publishes())
def test_publish_round_trips_through_decode_and_spec_decoder(p):
    tb = p["topic"].encode()
    topic = p["topic"] if p["as_str"] else tb
    size = codec.publish_size(len(tb), len(p["payload"]), p["qos"])
    buf = bytearray(size)
    args = (p["qos"], p["retain"], p["dup"], p["pid"])
    n = codec.encode_publish(buf, 0, topic, p["payload"], *args)
    assert n == size
    data = bytes(buf)
    rl = 2 + len(tb) + len(p["payload"]) + (2 if p["qos"] else 0)
    assert data[0] == 0x30 | p["dup"] << 3 | p["qos"] << 1 | p["retain"]
    assert data[1 : 1 + len(vbi(rl))] == vbi(rl)
    assert data == std_publish(tb, p["payload"], *args)

    got, pkt, g = decode_one(data)
    assert got == n and pkt.type == PUBLISH and pkt.rem_len == rl
    assert pkt.hdr_len == 1 + len(vbi(rl))
    assert bytes(g[pkt.topic_off : pkt.topic_off + pkt.topic_len]) == tb
    assert bytes(g[pkt.payload_off : pkt.payload_off + pkt.payload_len]) == p["payload"]
    assert (pkt.qos, pkt.retain, pkt.dup, pkt.pid) == args

    spkt, used = spec_decoder.decode(data)
    assert used == n
    assert (spkt["topic"], spkt["payload"]) == (p["topic"], p["payload"])
    assert (spkt["qos"], spkt["retain"], spkt["dup"]) == args[:3]
    assert spkt["pid"] == (p["pid"] or None)

    # Truncations need more bytes: the header ones all, of the body the first and last few.
    cut = range(n) if n <= 300 else [*range(40), *range(n - 3, n)]
    for k in cut:
        assert codec.decode(Guarded(data[:k]), 0, k, Packet()) == 0, k


@PROPS
@given(publishes(), st.integers(0, 9))
def test_publish_encodes_at_an_offset_without_touching_other_bytes(p, off):
    tb = p["topic"].encode()
    size = codec.publish_size(len(tb), len(p["payload"]), p["qos"])
    buf = bytearray(b"\xa5" * (off + size + 7))
    args = (p["qos"], p["retain"], p["dup"], p["pid"])
    assert codec.encode_publish(buf, off, tb, p["payload"], *args) == off + size
    assert buf[:off] == b"\xa5" * off and buf[off + size :] == b"\xa5" * 7
    assert buf[off : off + size] == std_publish(tb, p["payload"], *args)
    # Header then payload, as the session's large QoS 0 path sends it.
    hdr = bytearray(size - len(p["payload"]))
    assert codec.encode_publish_header(hdr, 0, tb, len(p["payload"]), *args) == len(hdr)
    assert bytes(hdr) + p["payload"] == buf[off : off + size]
    with pytest.raises(ValueError):
        codec.encode_publish(bytearray(size - 1), 0, tb, p["payload"], *args)


ACKS = (
    ("PUBACK", PUBACK, 0x40),
    ("PUBREC", PUBREC, 0x50),
    ("PUBREL", PUBREL, 0x62),
    ("PUBCOMP", PUBCOMP, 0x70),
)


@PROPS
@given(st.sampled_from(ACKS), pids)
def test_acks_round_trip_with_their_packet_id(ack, pid):
    name, ptype, first = ack
    buf = bytearray(4)
    assert codec.encode_ack(buf, 0, ptype, pid) == 4
    assert bytes(buf) == bytes((first, 2)) + u16(pid) == std_ack(ptype, pid)
    n, pkt, _ = decode_one(bytes(buf))
    assert (n, pkt.type, pkt.flags, pkt.pid) == (4, ptype, first & 15, pid)
    assert spec_decoder.decode(buf) == ({"type": name, "flags": first & 15, "pid": pid}, 4)
    for k in range(4):
        assert codec.decode(Guarded(buf[:k]), 0, k, Packet()) == 0


@pytest.mark.parametrize("ptype", [a[1] for a in ACKS])
@pytest.mark.parametrize("pid", [0, -1, 65536])
def test_acks_refuse_a_packet_id_out_of_range(ptype, pid):
    with pytest.raises(ValueError):
        codec.encode_ack(bytearray(4), 0, ptype, pid)


@PROPS
@given(st.booleans(), st.integers(0, 5))
def test_connack_decodes_session_present_and_return_code(sp, rc):
    data = std_connack(sp, rc)
    if sp and rc:  # MQTT-3.2.2-4
        with pytest.raises(ProtocolError):
            decode_one(data)
        with pytest.raises(SpecError):
            spec_decoder.decode(data)
        return
    n, pkt, _ = decode_one(data)
    assert (n, pkt.type, pkt.session_present, pkt.rc) == (4, CONNACK, sp, rc)
    spkt, used = spec_decoder.decode(data)
    assert (used, spkt["session_present"], spkt["return_code"]) == (4, sp, rc)


@PROPS
@given(pids, st.lists(st.sampled_from(SUBACK_CODES), min_size=1, max_size=300))
def test_suback_decodes_one_to_many_return_codes(pid, codes):
    data = std_suback(pid, codes)
    n, pkt, g = decode_one(data)
    assert (n, pkt.type, pkt.pid, pkt.rem_len) == (len(data), SUBACK, pid, 2 + len(codes))
    assert list(g[pkt.codes_off : pkt.codes_off + pkt.codes_len]) == codes
    spkt, used = spec_decoder.decode(data)
    assert (used, spkt["pid"], spkt["return_codes"]) == (len(data), pid, codes)


@PROPS
@given(pids)
def test_unsuback_and_pingresp_decode(pid):
    n, pkt, _ = decode_one(std_ack(UNSUBACK, pid))
    assert (n, pkt.type, pkt.pid) == (4, UNSUBACK, pid)
    n, pkt, _ = decode_one(PINGRESP)
    assert (n, pkt.type, pkt.rem_len) == (2, mqttconst.PINGRESP, 0)
    assert spec_decoder.decode(PINGRESP) == ({"type": "PINGRESP", "flags": 0}, 2)


@pytest.mark.parametrize(
    "rl,hdr", [(127, 2), (128, 3), (16383, 3), (16384, 4), (2097151, 4), (2097152, 5)]
)
def test_publish_at_each_remaining_length_boundary(rl, hdr):
    payload = bytes(rl - 5)  # topic "t" (3 bytes) and packet id (2)
    n = codec.publish_size(1, len(payload), 1)
    assert codec.packet_size(rl) == hdr + rl
    buf = bytearray(n)
    assert codec.encode_publish(buf, 0, b"t", payload, 1, False, False, 65535) == n == hdr + rl
    got, pkt, _ = decode_one(bytes(buf))
    assert (got, pkt.hdr_len, pkt.rem_len, pkt.pid, pkt.payload_len) == (n, hdr, rl, 65535, rl - 5)
    spkt, used = spec_decoder.decode(buf)
    assert used == n and spkt["pid"] == 65535 and len(spkt["payload"]) == rl - 5


def test_largest_remaining_length_header_and_the_fifth_byte():
    hdr = bytearray(16)
    top = 268_435_455
    end = codec.encode_publish_header(hdr, 0, b"t", top - 3, 0)
    assert bytes(hdr[:end]) == h("30 ffffff7f 0001 74")
    pkt = Packet()
    assert codec.decode_header(Guarded(hdr[:end]), 0, end, pkt) == 5 and pkt.rem_len == top
    assert codec.decode(Guarded(hdr[:end]), 0, end, pkt) == 0  # the body is still to come
    with pytest.raises(ValueError):
        codec.encode_publish_header(hdr, 0, b"t", top - 2, 0)
    with pytest.raises(ProtocolError):
        codec.decode(Guarded(h("30 ffffffff 01")), 0, 6, pkt)
    with pytest.raises(SpecError):
        spec_decoder.decode(h("30 ffffffff 01"))


# 2. Client-to-server encoders cross-checked against spec_decoder ----------------------------


def assert_server_never_sends(data):
    with pytest.raises(ProtocolError):
        decode_one(data)


@PROPS
@given(
    client_id=client_text,
    clean=st.booleans(),
    keepalive=st.one_of(st.integers(0, 65535), st.sampled_from((0, 1, 60, 65535))),
    will=st.one_of(
        st.none(),
        st.tuples(topic_names, st.one_of(st.none(), st.binary(max_size=300)), qoss, st.booleans()),
    ),
    user=st.one_of(st.none(), client_text),
    password=st.one_of(st.none(), st.binary(max_size=64)),
    as_str=st.booleans(),
)
def test_connect_matches_spec_decoder_for_every_flag_combination(
    client_id, clean, keepalive, will, user, password, as_str
):
    def enc(s):
        return s if as_str or s is None or isinstance(s, bytes) else s.encode()

    wt, wm, wq, wr = will if will else (None, None, 0, False)
    kw = dict(
        will_topic=enc(wt),
        will_msg=wm,
        will_qos=wq,
        will_retain=wr,
        user=enc(user),
        password=password,
    )
    if password is not None and user is None or not client_id and not clean:
        with pytest.raises(ValueError):  # MQTT-3.1.2-22, MQTT-3.1.3-7
            codec.encode_connect(bytearray(70000), 0, enc(client_id), clean, keepalive, **kw)
        return
    size = codec.encode_connect(None, 0, enc(client_id), clean, keepalive, **kw)  # sizes it
    buf = bytearray(size)
    assert codec.encode_connect(buf, 0, enc(client_id), clean, keepalive, **kw) == size
    spkt, used = spec_decoder.decode(buf)
    assert used == size
    assert spkt == dict(
        type="CONNECT",
        flags=0,
        protocol_name="MQTT",
        protocol_level=4,
        clean_session=clean,
        keepalive=keepalive,
        client_id=client_id,
        will=will is not None,
        will_qos=wq,
        will_retain=wr,
        will_topic=wt,
        will_message=(wm or b"") if will else None,
        username=user,
        password=password,
    )
    assert_server_never_sends(bytes(buf))


@PROPS
@given(pids, st.lists(st.tuples(topic_filters(), qoss), min_size=1, max_size=8), st.booleans())
def test_subscribe_matches_spec_decoder(pid, filters, as_str):
    arg = [(f if as_str else f.encode(), q) for f, q in filters]
    size = codec.encode_subscribe(None, 0, pid, arg)  # sizes it
    buf = bytearray(size)
    assert codec.encode_subscribe(buf, 0, pid, arg) == size
    assert buf[0] == 0x82
    spkt, used = spec_decoder.decode(buf)
    assert (used, spkt["pid"], spkt["topics"]) == (size, pid, filters)
    assert_server_never_sends(bytes(buf))


@PROPS
@given(pids, st.lists(topic_filters(), min_size=1, max_size=8), st.booleans())
def test_unsubscribe_matches_spec_decoder(pid, filters, as_str):
    arg = [f if as_str else f.encode() for f in filters]
    size = codec.encode_subscribe(None, 0, pid, arg, True)
    buf = bytearray(size)
    assert codec.encode_subscribe(buf, 0, pid, arg, True) == size
    assert buf[0] == 0xA2
    spkt, used = spec_decoder.decode(buf)
    assert (used, spkt["pid"], spkt["topics"]) == (size, pid, filters)
    assert_server_never_sends(bytes(buf))


def test_subscribe_crossing_the_two_byte_remaining_length():
    filters = [("f/%03d/+" % i, i % 3) for i in range(13)]  # 13 * 10 + 2 = 132 bytes
    buf = bytearray(codec.encode_subscribe(None, 0, 65535, filters))
    assert codec.encode_subscribe(buf, 0, 65535, filters) == len(buf) == 135
    assert buf[1:3] == vbi(132)
    spkt, used = spec_decoder.decode(buf)
    assert used == 135 and spkt["topics"] == filters


@pytest.mark.parametrize(
    "ptype,want,name",
    [(PINGREQ, "c0 00", "PINGREQ"), (DISCONNECT, "e0 00", "DISCONNECT")],
)
def test_pingreq_and_disconnect_match_spec_decoder(ptype, want, name):
    buf = bytearray(2)
    assert codec.encode_empty(buf, 0, ptype) == 2 and bytes(buf) == h(want)
    assert spec_decoder.decode(buf) == ({"type": name, "flags": 0}, 2)
    assert_server_never_sends(bytes(buf))
    with pytest.raises(ValueError):
        codec.encode_empty(bytearray(1), 0, ptype)


# 3. Robustness: random and mutated streams ------------------------------------------------


@PROPS_MANY
@given(st.binary(max_size=400), st.integers(1, 9))
@example(h("30 80 80 80 80"), 1)  # a fifth remaining-length byte
@example(h("32 04 0001 61"), 1)  # the packet id overruns the packet
def test_random_bytes_decode_to_packets_or_protocol_error(data, step):
    whole = decode_stream(data)
    assert decode_stream(data, step) == whole  # byte by byte gives the same packets


@PROPS_MANY
@given(st.data())
def test_mutated_streams_decode_the_same_whole_or_in_pieces(data):
    stream = b"".join(data.draw(st.lists(server_packets(), min_size=1, max_size=6)))
    assert decode_stream(stream)[1] is None
    bad = data.draw(mutations(stream))
    note("mutated: " + bad.hex(" "))
    step = data.draw(st.integers(1, 7))
    assert decode_stream(bad, step) == decode_stream(bad)


def codec_verdict(data):
    try:
        n, pkt, g = decode_one(data)
    except ProtocolError as e:
        return "error", e.args[0], None
    return ("packet", n, (pkt, g)) if n else ("more", 0, None)


def spec_verdict(data):
    try:
        spkt, n = spec_decoder.decode(data)
    except SpecError as e:
        return "error", str(e), None
    return ("packet", n, spkt) if spkt else ("more", 0, None)


def known_difference(c, s):
    """Where the two decoders may disagree, and why; None if they must agree."""
    if s[0] == "packet" and c[0] == "error" and s[2]["type"] in CLIENT_ONLY:
        return "the codec decodes only what a server sends"
    if s[0] == "error" and c[0] == "more" and s[1].startswith("MQTT-3.3.1-2"):
        return "DUP at QoS 0: the codec checks it once the whole PUBLISH is in"
    if s[0] == "error" and c[0] == "packet" and s[1].startswith("MQTT-1.5.3-1"):
        return "ill-formed UTF-8 topic: the codec does not check (reported)"
    if s[0] == "error" and c[0] == "packet" and s[1].startswith("3.2.2.3"):
        return "reserved CONNACK return code 6..255: passed on as a refusal (reported)"
    return None


def same_fields(pkt, g, spkt):
    t = spkt["type"]
    assert getattr(mqttconst, t) == pkt.type and spkt["flags"] == pkt.flags
    if t == "PUBLISH":
        topic = bytes(g[pkt.topic_off : pkt.topic_off + pkt.topic_len]).decode()
        payload = bytes(g[pkt.payload_off : pkt.payload_off + pkt.payload_len])
        got = (topic, payload, pkt.qos, pkt.dup, pkt.retain, pkt.pid or None)
        want = (spkt["topic"], spkt["payload"], spkt["qos"], spkt["dup"], spkt["retain"])
        assert got == want + (spkt["pid"],)
    elif t == "CONNACK":
        assert (pkt.session_present, pkt.rc) == (spkt["session_present"], spkt["return_code"])
    elif t == "SUBACK":
        assert pkt.pid == spkt["pid"]
        assert list(g[pkt.codes_off : pkt.codes_off + pkt.codes_len]) == spkt["return_codes"]
    elif "pid" in spkt:
        assert pkt.pid == spkt["pid"]


@PROPS_MANY
@given(st.data())
def test_codec_and_spec_decoder_agree_on_mutated_server_packets(data):
    bad = data.draw(mutations(data.draw(server_packets())))
    note("mutated: " + bad.hex(" "))
    c = codec_verdict(bad)
    s = spec_verdict(bad)
    why = known_difference(c, s)
    event(why or "agree: " + c[0])
    if why:
        return
    assert c[0] == s[0], (c[:2], s[:2])
    if c[0] == "packet":
        assert c[1] == s[1]
        same_fields(*c[2], s[2])


@pytest.mark.parametrize(
    "hexs",
    [
        "30 05 0003 61ff62",  # 0xff never occurs in UTF-8
        "30 04 0002 c0af",  # overlong encoding of '/'
        "30 05 0003 eda080",  # a UTF-16 surrogate (U+D800) encoded as UTF-8
        "30 03 0001 80",  # a lone continuation byte
    ],
)
def test_publish_topic_with_ill_formed_utf8_is_a_protocol_error(hexs):
    # MQTT-1.5.3-1: ill-formed UTF-8 in a received packet means closing the connection.
    # The codec splits the packet; the session (which may use mote.topic) rejects it.
    data = h(hexs)
    with pytest.raises(SpecError):
        spec_decoder.decode(data)
    s = Session()
    s.set_connect("utf8", True, 0)
    s.connect(0)
    drain(s)
    feed(s, std_connack(False, 0))
    assert s.next_event() == EV_CONNACK
    feed(s, data)
    with pytest.raises(ProtocolError):
        s.next_event()
    assert s.state == ERROR


def test_reserved_connack_return_code_is_passed_on_as_a_refusal():
    # 3.2.2.3 reserves codes 6..255; spec_decoder rejects them, the codec hands them on
    # (the session reports a refused connection). Pinned so a change is noticed.
    n, pkt, _ = decode_one(h("20 02 00 06"))
    assert (n, pkt.rc) == (4, 6)
    with pytest.raises(SpecError):
        spec_decoder.decode(h("20 02 00 06"))


# 3b. A connected Session fed random-sized chunks -------------------------------------------


def drain(s):
    out = bytearray()
    for _ in range(1000):
        if not s.tx_len:
            return bytes(out)
        out += bytes(memoryview(s.tx_buf)[s.tx_off : s.tx_off + s.tx_len])
        s.sent(s.tx_len)
    raise AssertionError("the session never stops sending")


def guarded_session(rx_size):
    """A connected Session whose receive buffer refuses reads outside the bytes that
    arrived, with flows outstanding that a server's stream may answer: QoS 1 publish pid 1,
    QoS 2 publish pid 2, SUBSCRIBE pid 3, UNSUBSCRIBE pid 4."""
    s = Session(max_inflight=4, outbox_size=512, rx_size=rx_size, tx_size=128, qos2_in=4)
    g = Guarded(bytearray(rx_size))
    g.window = lambda: (s._rx_start, s.rx_end)
    s.rx_buf = g
    s.rx_mv = memoryview(g)
    s.set_connect("props", True, 30)
    s.connect(0)
    drain(s)
    assert feed(s, std_connack(False, 0)) == 4 and s.next_event() == EV_CONNACK
    assert s.state == CONNECTED
    assert s.publish(b"o/1", b"one", 1) == 1 and s.publish(b"o/2", b"two", 2) == 2
    assert s.subscribe([(b"a/+", 1)]) == 3 and s.subscribe([b"b/#"], True) == 4
    drain(s)
    return s


def check_session(s, ev):
    n = len(s.rx_buf)
    assert 0 <= s._rx_start <= s.rx_end <= n and s.rx_room == n - s.rx_end
    p = s.pkt
    if ev == EV_MESSAGE:
        assert 0 <= p.topic_off and p.topic_off + p.topic_len <= p.payload_off
        assert p.payload_off + p.payload_len <= s.rx_end
    elif ev == EV_SUBACK:
        assert 0 <= p.codes_off and p.codes_off + p.codes_len <= s.rx_end


def run_session(s, data, chunks):
    """Feed data in chunks of the given sizes, handling every event after each. Returns
    (events, messages as (topic, payload), the ProtocolError message or None)."""
    evs = []
    msgs = []
    pos = 0
    stalled = 0
    ci = 0

    def pump():
        for _ in range(2 * len(s.rx_buf) + 4):  # each event consumes 2 bytes or more
            ev = s.next_event()
            if not ev:
                return
            check_session(s, ev)
            evs.append(ev)
            if ev == EV_MESSAGE:
                p = s.pkt
                t = bytes(s.rx_mv[p.topic_off : p.topic_off + p.topic_len])
                msgs.append((t, bytes(s.rx_mv[p.payload_off : p.payload_off + p.payload_len])))
        raise AssertionError("next_event() never returned 0")

    try:
        for _ in range(4 * len(data) + 8):
            if pos >= len(data) and not s.tx_len:
                pump()
                if not s.tx_len:
                    return evs, msgs, None
            k = feed(s, data[pos : pos + chunks[ci % len(chunks)]]) if pos < len(data) else 0
            ci += 1
            pos += k
            pump()
            drain(s)
            stalled = 0 if k or pos >= len(data) else stalled + 1
            assert stalled < 3, "the session stopped taking bytes"
    except ProtocolError as e:
        assert len(e.args) == 2 and isinstance(e.args[0], str)
        return evs, msgs, e.args[0]
    raise AssertionError("feeding the session made no progress")


@st.composite
def server_streams(draw):
    """A valid stream answering guarded_session's flows, with incoming PUBLISH packets
    (some larger than the receive buffer; QoS 2 ones followed by their PUBREL) and PINGRESP
    mixed in. Returns (rx_size, bytes, expected events, expected (topic, payload)s)."""
    rx = draw(st.sampled_from((32, 64, 256)))
    # (packet bytes, events, message or None)
    script = [
        (std_ack(PUBACK, 1), [EV_PUBLISHED], None),
        (std_ack(PUBREC, 2), [], None),
        (std_ack(PUBCOMP, 2), [EV_PUBLISHED], None),
    ]
    extra = [(std_suback(3, [1]), [EV_SUBACK], None)]
    extra.append((std_ack(UNSUBACK, 4), [EV_UNSUBACK], None))
    extra += [(PINGRESP, [EV_PINGRESP], None)] * draw(st.integers(0, 2))
    for i in range(draw(st.integers(0, 5))):
        qos = draw(qoss)
        pid = 100 + i
        topic = draw(short_topics).encode()
        payload = draw(st.binary(max_size=300))
        pkt = std_publish(topic, payload, qos, draw(st.booleans()), False, pid if qos else 0)
        fits = len(pkt) <= rx
        if qos == 2:
            pkt += std_ack(PUBREL, pid)
        extra.append(
            (pkt, [EV_MESSAGE if fits else EV_DROPPED], (topic, payload) if fits else None)
        )
    extra = [extra[i] for i in draw(st.permutations(range(len(extra))))]
    items = []
    while script or extra:  # interleave, keeping the PUBACK/PUBREC/PUBCOMP order
        if extra and (not script or draw(st.booleans())):
            items.append(extra.pop(0))
        else:
            items.append(script.pop(0))
    data = b"".join(p for p, _, _ in items)
    return rx, data, [ev for _, evs, _ in items for ev in evs], [m for _, _, m in items if m]


@PROPS
@given(server_streams(), st.lists(st.integers(1, 80), min_size=1, max_size=8))
def test_session_takes_a_valid_stream_in_any_chunks(stream, chunks):
    rx, data, want_evs, want_msgs = stream
    s = guarded_session(rx)
    evs, msgs, err = run_session(s, data, chunks)
    assert err is None
    assert evs == want_evs and msgs == want_msgs
    assert s.pending() == 0 and s.state == CONNECTED


@PROPS_MANY
@given(st.data())
def test_session_survives_random_and_mutated_streams(data):
    rx, stream, _, _ = data.draw(server_streams())
    bad = data.draw(st.one_of(mutations(stream), st.binary(max_size=400)))
    note("stream: " + bad.hex(" "))
    chunks = data.draw(st.lists(st.integers(1, 80), min_size=1, max_size=8))
    s = guarded_session(rx)
    evs, _, err = run_session(s, bad, chunks)
    event("protocol error" if err else "accepted")
    assert s.state == (ERROR if err else CONNECTED)
    event("events: %d" % min(len(evs), 5))


def test_the_numbers_tests_name_are_motes_own():
    # mote keeps packet types, states and events as private consts (no RAM on a board);
    # on CPython they are module attributes, so the tests' copies are checked here.
    from mote import client, session, snapshot

    names = [n for n in dir(mqttconst) if n.isupper()]
    assert len(names) == 28  # 14 packet types, 4 states, 8 events, 2 publish() results
    for n in names:
        home = session if n.startswith("EV_") or n in _SESSION_NAMES else codec
        assert getattr(home, "_" + n) == getattr(mqttconst, n), n
        for mod in (session, client, snapshot):  # private copies agree where there are any
            assert getattr(mod, "_" + n, getattr(mqttconst, n)) == getattr(mqttconst, n), n


_SESSION_NAMES = ("DISCONNECTED", "CONNECTING", "CONNECTED", "ERROR", "NO_ROOM", "NOT_CONNECTED")


def test_private_copies_in_the_set_up_modules_agree():
    # The modules loaded only while building or connecting keep private copies of their
    # home module's numbers (a const costs no RAM there): every copy must match.
    from mote import client, client_setup, codec_setup, link, session, session_setup

    checked = 0
    for mod, home in (
        (codec_setup, codec),
        (session_setup, session),
        (client_setup, client),
        (link, client),
    ):
        for n in dir(mod):
            v = getattr(mod, n)
            if n[:1] == "_" and n[1:2].isupper() and type(v) is int and hasattr(home, n):
                assert v == getattr(home, n), (mod.__name__, n)
                checked += 1
    assert checked >= 20
