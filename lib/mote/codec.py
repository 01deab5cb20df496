# mote.codec: MQTT 3.1.1 packets to and from bytes in caller-owned buffers.
# Layer 1 (imports only mote.compat): no I/O, no clock, no state between calls.
#
# Theory of operation
#   Encoders come in families named after the packet: `publish_size(...)` gives the whole
#   packet's length, `encode_publish(buf, off, ...)` writes it at buf[off:] and returns the
#   offset just past it, so calls chain and off=0 returns the length (encode_connect and
#   encode_subscribe, given None for buf, return it without writing: one function, not a
#   twin `_size` one, to save RAM on a board). Packets of one shape
#   share one encoder: `encode_ack` (PUBACK, PUBREC, PUBREL, PUBCOMP), `encode_subscribe`
#   (SUBSCRIBE, and UNSUBSCRIBE with unsub=True), `encode_empty` (PINGREQ, DISCONNECT).
#   Topic names are checked by mote.topic before they get here (the session does it once
#   per topic); the codec checks lengths, QoS and packet ids. Each checks the room
#   once, up front, and then writes with shifts and slice assignment: for bytes-like
#   arguments nothing is allocated (a str is encoded once, which allocates: the per-message
#   paths pass bytes).
#   Decoding is incremental: `decode_header` reads the fixed header from buf[off:end] and
#   returns its length, or 0 when more bytes are needed (a packet may arrive one byte at a
#   time). `decode(buf, off, end, pkt)` then returns the whole packet's length, or 0, and
#   fills the caller's `Packet` record: fields are offsets into buf, never copies, so a
#   received PUBLISH costs nothing here whatever its size.
#   Malformed input raises `ProtocolError` (an `MQTTException`) whose short message names
#   what was wrong (e.g. "bad SUBACK"; the comment beside it cites the rule), with the
#   offending value as a second argument; nothing else escapes.
#   CONNECT, SUBSCRIBE and UNSUBSCRIBE are encoded by mote.codec_setup, loaded on first
#   use (`codec.encode_connect` and `codec.encode_subscribe` find it): a connected client
#   needs them only while it connects or subscribes, and then forgets them (RAM on a board).
#   MQTT 5 adds a property block after the variable header of most packets: each decoder
#   reads its variable header in one place, where that block would be measured and
#   recorded in `Packet` (as props_off/props_len) without changing the callers.
from mote.compat import const

# Packet types (high nibble of the first byte), MQTT 3.1.1 section 2.2.1. Private: a
# public const is a module global and costs RAM on a board; callers use the numbers.
_CONNECT = const(1)
_CONNACK = const(2)
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBSCRIBE = const(8)
_SUBACK = const(9)
_UNSUBSCRIBE = const(10)
_UNSUBACK = const(11)
_PINGREQ = const(12)
_PINGRESP = const(13)
_DISCONNECT = const(14)

_VBI_MAX = const(268_435_455)  # MQTT 3.1.1 section 2.2.3
_U16_MAX = const(65535)

# Per packet type t: _HDR[t] is the fixed header's required flags (section 2.2.2; 0xFF:
# reserved type, 0x10: PUBLISH, whose flags are DUP/QoS/RETAIN); _HDR[16 + t] the fixed
# remaining length (0xFF: variable). One object, not two: each costs RAM on a board.
_HDR = (
    b"\xff\x00\x00\x10\x00\x00\x02\x00\x02\x00\x02\x00\x00\x00\x00\xff"
    b"\xff\xff\x02\xff\x02\x02\x02\x02\xff\xff\xff\x02\x00\x00\x00\xff"
)


class MQTTException(Exception):
    """An MQTT-level failure. A refused CONNACK or SUBACK carries the return code as
    args[0] (as umqtt's does)."""


class ProtocolError(MQTTException):
    """The peer sent bytes that break MQTT 3.1.1: args are (message, value)."""


class Packet:
    """One decoded packet: offsets into the buffer it was decoded from, never copies.
    Reused for every packet (set in place: no allocation). hdr_len: the fixed header's
    2..5 bytes; codes_off/codes_len: SUBACK's return codes."""

    def __init__(self):
        self.type = self.flags = self.hdr_len = self.rem_len = self.pid = self.qos = 0
        self.topic_off = self.topic_len = self.payload_off = self.payload_len = 0
        self.rc = self.codes_off = self.codes_len = 0
        self.dup = self.retain = self.session_present = False
        self.topic_ascii = True  # PUBLISH: no topic byte >= 0x80 (no UTF-8 left to check)


# Field helpers ------------------------------------------------------------------------
# Error messages are short on purpose (each is a heap string on a board); the value that
# broke the rule goes with them as the second argument.


def _b(s):
    # A str is encoded once here (allocates); bytes-like values pass through untouched.
    return s.encode() if isinstance(s, str) else s


def packet_size(rl):
    """Length of a whole packet whose remaining length is rl: type byte, rl's 1..4
    bytes, rl."""
    return rl + (2 if rl < 128 else 3 if rl < 16384 else 4 if rl < 2097152 else 5)


def encode_vbi(buf, off, n):
    if not 0 <= n <= _VBI_MAX:
        raise ValueError("too long", n)  # remaining length
    while True:
        digit = n & 0x7F
        n >>= 7
        buf[off] = digit | 0x80 if n else digit
        off += 1
        if not n:
            return off


def _put_str(buf, off, s):
    # A UTF-8 string or binary field: two-byte length, then the bytes (section 1.5.3).
    n = len(s)
    if n > _U16_MAX:
        raise ValueError("too long", n)
    buf[off] = n >> 8
    buf[off + 1] = n & 0xFF
    off += 2
    buf[off : off + n] = s
    return off + n


def _room(buf, off, size):
    if size > len(buf) - off:
        raise ValueError("no room", size)  # buf is too small for the packet


def _check(pid, qos):
    if not 0 < pid <= _U16_MAX:
        raise ValueError("bad pid", pid)  # packet id: 1..65535
    if not 0 <= qos <= 2:
        raise ValueError("bad QoS", qos)


# PUBLISH and its acknowledgements ------------------------------------------------------


def publish_size(topic_len, payload_len, qos):
    """Length of a whole PUBLISH packet with these field sizes."""
    return packet_size(2 + topic_len + payload_len + (2 if qos else 0))


def encode_publish_header(buf, off, topic, payload_len, qos=0, retain=False, dup=False, pid=0):
    """Everything of a PUBLISH but its payload, which the caller writes next (or sends
    from its own object). topic: a valid topic name (mote.topic checks it), bytes-like;
    a str is encoded, allocating. Returns the offset past the header. No allocation for
    bytes-like topics."""
    if isinstance(topic, str):
        topic = topic.encode()
    if qos:
        _check(pid, qos)
    elif dup:
        raise ValueError("DUP with QoS 0", None)  # MQTT-3.3.1-2
    rl = 2 + len(topic) + payload_len + (2 if qos else 0)
    _room(buf, off, packet_size(rl) - payload_len)
    buf[off] = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    off = _put_str(buf, encode_vbi(buf, off + 1, rl), topic)
    if qos:
        buf[off] = pid >> 8
        buf[off + 1] = pid & 0xFF
        off += 2
    return off


def encode_publish(buf, off, topic, msg, qos=0, retain=False, dup=False, pid=0):
    """A whole PUBLISH (section 3.3); a retransmission sets DUP with buf[off] |= 0x08.
    Returns the offset past it. No allocation for bytes-like topic and msg."""
    if isinstance(msg, str):
        msg = msg.encode()
    n = len(msg)
    p = encode_publish_header(buf, off, topic, n, qos, retain, dup, pid)
    _room(buf, p, n)
    buf[p : p + n] = msg
    return p + n


def encode_ack(buf, off, ptype, pid):
    """PUBACK, PUBREC, PUBREL or PUBCOMP (ptype) for packet id pid. No allocation."""
    _check(pid, 0)
    _room(buf, off, 4)
    buf[off] = ptype << 4 | (2 if ptype == _PUBREL else 0)  # MQTT-3.6.1-1: PUBREL's 0010
    buf[off + 1] = 2
    buf[off + 2] = pid >> 8
    buf[off + 3] = pid & 0xFF
    return off + 4


# PINGREQ, DISCONNECT --------------------------------------------


def encode_empty(buf, off, ptype):
    """A packet that is only its fixed header: PINGREQ or DISCONNECT (ptype)."""
    _room(buf, off, 2)
    buf[off] = ptype << 4
    buf[off + 1] = 0
    return off + 2


# Decoding -------------------------------------------------------------------------------


def decode_header(buf, off, end, pkt):
    """Fixed header at buf[off:end]: returns its length (2..5) and sets pkt.type,
    pkt.flags, pkt.rem_len and pkt.hdr_len, or returns 0 when more bytes are needed.
    Raises ProtocolError for a reserved type, wrong flags, QoS 3, a fifth length byte or
    a wrong length for a fixed-size packet. No allocation."""
    if off >= end:
        return 0
    b0 = buf[off]
    t = b0 >> 4
    flags = b0 & 0x0F
    want = _HDR[t]
    if want == 0xFF:
        raise ProtocolError("bad type", t)  # a reserved packet type
    if want == 0x10:
        if flags & 0x06 == 0x06:
            raise ProtocolError("QoS 3", b0)  # MQTT-3.3.1-4
    elif flags != want:
        raise ProtocolError("bad flags", b0)  # MQTT-2.2.2-2: reserved flag bits
    n = 0
    shift = 0
    i = off + 1
    while True:
        if i >= end:
            return 0
        d = buf[i]
        n |= (d & 0x7F) << shift
        i += 1
        if not d & 0x80:
            break
        if shift == 21:
            raise ProtocolError("bad length", d)  # a fifth remaining length byte
        shift += 7
    fix = _HDR[16 + t]
    if fix != 0xFF and n != fix:
        raise ProtocolError("bad length", n)  # not the packet type's fixed length
    pkt.type = t
    pkt.flags = flags
    pkt.rem_len = n
    pkt.hdr_len = i - off
    return i - off


def decode_body(buf, off, end, pkt):
    """Decode the body at buf[off:end] of the packet whose header is in pkt. Raises
    ProtocolError for a type a server never sends or a malformed body. PUBLISH: topic and
    payload as offsets, qos, dup, retain, pid (the topic's UTF-8 is mote.topic's to
    check). CONNACK: session_present, rc. SUBACK: pid, codes_off/codes_len. PUBACK,
    PUBREC, PUBREL, PUBCOMP, UNSUBACK: pid. No allocation."""
    t = pkt.type
    if t == _PINGRESP:
        return
    if t == _CONNACK:
        ack = buf[off]
        pkt.rc = buf[off + 1]
        # Reserved flags (MQTT-3.2.2), or session present with a refusal (MQTT-3.2.2-4).
        if ack & 0xFE or pkt.rc and ack:
            raise ProtocolError("bad CONNACK", ack)
        pkt.session_present = bool(ack)
        return
    p = off + 2
    if t == _PUBLISH:
        flags = pkt.flags
        qos = (flags >> 1) & 3
        # Shorter than its topic length, its topic, or its packet id: "short PUBLISH".
        if end - off < 2:
            raise ProtocolError("short PUBLISH", end - off)
        tlen = (buf[off] << 8) | buf[off + 1]
        if not tlen:
            raise ProtocolError("empty topic", 0)  # MQTT-4.7.3-1
        if tlen > end - p:
            raise ProtocolError("short PUBLISH", tlen)
        e = p + tlen
        # MQTT-3.3.2-2: no wildcard ('#', '+'), and no NUL. find() scans in C without
        # allocating (bytes and bytearray take an int with start and end, MicroPython from
        # 1.21 on): a topic costs the short loop below, not three comparisons per byte.
        if buf.find(0x23, p, e) >= 0 or buf.find(0x2B, p, e) >= 0 or buf.find(0, p, e) >= 0:
            raise ProtocolError("bad topic", tlen)
        hi = 0
        for i in range(p, e):
            hi |= buf[i]
        pkt.topic_ascii = hi < 0x80
        pkt.topic_off = p
        pkt.topic_len = tlen
        p += tlen
        pkt.pid = 0
        if qos:
            if end - p < 2:
                raise ProtocolError("short PUBLISH", qos)
            off = p
            p += 2
        elif flags & 0x08:
            raise ProtocolError("DUP with QoS 0", flags)  # MQTT-3.3.1-2
        pkt.qos = qos
        pkt.dup = bool(flags & 0x08)
        pkt.retain = bool(flags & 0x01)
        pkt.payload_off = p
        pkt.payload_len = end - p
        if not qos:
            return
    elif t == _SUBACK:
        # No return code at all, or one that is not 0, 1, 2 or 0x80 (MQTT-3.9.3-2).
        if end - off < 3:
            raise ProtocolError("bad SUBACK", end - off)
        for i in range(p, end):
            c = buf[i]
            if c > 2 and c != 0x80:
                raise ProtocolError("bad SUBACK", c)
        pkt.codes_off = p
        pkt.codes_len = end - p
    elif t != _PUBACK and t != _PUBREC and t != _PUBREL and t != _PUBCOMP and t != _UNSUBACK:
        raise ProtocolError("bad type", t)  # a type a server never sends
    pkt.pid = (buf[off] << 8) | buf[off + 1]
    if not pkt.pid:
        raise ProtocolError("bad pid", 0)  # MQTT-2.3.1-1: packet id 0


def decode(buf, off, end, pkt):
    """One whole server-to-client packet from buf[off:end]: returns its total length and
    fills pkt, or returns 0 when more bytes are needed. Raises ProtocolError."""
    h = decode_header(buf, off, end, pkt)
    if not h:
        return 0
    total = h + pkt.rem_len
    if end - off < total:
        return 0
    decode_body(buf, off + h, off + total, pkt)
    return total


def __getattr__(name):
    # encode_connect and encode_subscribe: in mote.codec_setup (see the top of this file)
    from mote import codec_setup

    return getattr(codec_setup, name)
