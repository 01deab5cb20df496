# mote.codec: MQTT 3.1.1 packets to and from bytes in caller-owned buffers.
# Layer 1 (imports only mote.compat): no I/O, no clock, no state between calls.
#
# Theory of operation
#   Encoders come in families named after the packet: `publish_size(...)` gives the whole
#   packet's length, `encode_publish(buf, off, ...)` writes it at buf[off:] and returns the
#   offset just past it, so calls chain and off=0 returns the length. Each checks the room
#   once, up front, and then writes with shifts and slice assignment: for bytes-like
#   arguments nothing is allocated (a str is encoded once, which allocates: the per-message
#   paths pass bytes).
#   Decoding is incremental: `decode_header` reads the fixed header from buf[off:end] and
#   returns its length, or 0 when more bytes are needed (a packet may arrive one byte at a
#   time). `decode(buf, off, end, pkt)` then returns the whole packet's length, or 0, and
#   fills the caller's `Packet` record: fields are offsets into buf, never copies, so a
#   received PUBLISH costs nothing here whatever its size.
#   Malformed input raises `ProtocolError` (an `MQTTException`) whose message names the
#   rule broken, with the offending value as a second argument; nothing else escapes.
#   MQTT 5 adds a property block after the variable header of most packets: each decoder
#   reads its variable header in one place, where that block would be measured and
#   recorded in `Packet` (as props_off/props_len) without changing the callers.
from mote.compat import const

# Packet types (high nibble of the first byte), MQTT 3.1.1 section 2.2.1.
CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

_VBI_MAX = const(268_435_455)  # MQTT 3.1.1 section 2.2.3
_U16_MAX = const(65535)
_PUBREL_FIRST = const(0x62)  # MQTT-3.6.1-1: PUBREL flags are 0010
_SUBSCRIBE_FIRST = const(0x82)  # MQTT-3.8.1-1
_UNSUBSCRIBE_FIRST = const(0xA2)  # MQTT-3.10.1-1

# Required fixed-header flags per packet type (section 2.2.2); 0xFF: reserved type,
# 0x10: PUBLISH, whose flags are DUP/QoS/RETAIN.
_FLAGS = b"\xff\x00\x00\x10\x00\x00\x02\x00\x02\x00\x02\x00\x00\x00\x00\xff"
# Fixed remaining length per packet type; 0xFF: variable.
_FIXLEN = b"\xff\xff\x02\xff\x02\x02\x02\x02\xff\xff\xff\x02\x00\x00\x00\xff"


class MQTTException(Exception):
    """An MQTT-level failure. A refused CONNACK or SUBACK carries the return code as
    args[0] (as umqtt's does)."""


class ProtocolError(MQTTException):
    """The peer sent bytes that break MQTT 3.1.1: args are (message, value)."""


class Packet:
    """One decoded packet: offsets into the buffer it was decoded from, never copies.
    Reused for every packet (set in place: no allocation)."""

    def __init__(self):
        self.type = 0
        self.flags = 0
        self.hdr_len = 0  # fixed header: 2..5 bytes
        self.rem_len = 0
        self.pid = 0
        self.qos = 0
        self.dup = False
        self.retain = False
        self.topic_off = 0
        self.topic_len = 0
        self.payload_off = 0
        self.payload_len = 0
        self.session_present = False
        self.rc = 0
        self.codes_off = 0  # SUBACK return codes
        self.codes_len = 0


# Field helpers ------------------------------------------------------------------------


def _b(s):
    # A str is encoded once here (allocates); bytes-like values pass through untouched.
    return s.encode() if isinstance(s, str) else s


def vbi_size(n):
    """Bytes needed to encode n as a remaining length (1..4)."""
    if n < 128:
        return 1
    if n < 16384:
        return 2
    if n < 2097152:
        return 3
    return 4


def encode_vbi(buf, off, n):
    if not 0 <= n <= _VBI_MAX:
        raise ValueError("remaining length out of range", n)
    while True:
        digit = n & 0x7F
        n >>= 7
        buf[off] = digit | 0x80 if n else digit
        off += 1
        if not n:
            return off


def _put_u16(buf, off, v):
    buf[off] = v >> 8
    buf[off + 1] = v & 0xFF
    return off + 2


def _put_str(buf, off, s):
    # A UTF-8 string or binary field: two-byte length, then the bytes (section 1.5.3).
    n = len(s)
    buf[off] = n >> 8
    buf[off + 1] = n & 0xFF
    off += 2
    buf[off : off + n] = s
    return off + n


def _room(buf, off, size):
    if size > len(buf) - off:
        raise ValueError("buffer too small", size)


def _check_field(s):
    if len(s) > _U16_MAX:
        raise ValueError("field longer than 65535 bytes", len(s))


def _check_pid(pid):
    if not 0 < pid <= _U16_MAX:
        raise ValueError("packet id out of range", pid)


def _check_qos(qos):
    if not 0 <= qos <= 2:
        raise ValueError("QoS must be 0, 1 or 2", qos)


# CONNECT -------------------------------------------------------------------------------


def _connect_rl(client_id, will_topic, will_msg, user, password):
    rl = 10 + 2 + len(client_id)  # "MQTT", level, flags, keepalive, client id
    if will_topic is not None:
        rl += 4 + len(will_topic) + len(will_msg)
    if user is not None:
        rl += 2 + len(user)
    if password is not None:
        rl += 2 + len(password)
    return rl


def connect_size(client_id, will_topic=None, will_msg=None, user=None, password=None):
    rl = _connect_rl(_b(client_id), _b(will_topic), _b(will_msg or b""), _b(user), _b(password))
    return 1 + vbi_size(rl) + rl


def encode_connect(
    buf,
    off,
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
    """CONNECT (section 3.1). Strings may be str or bytes. Returns the offset past it.
    Raises ValueError for a field the standard does not allow."""
    client_id = _b(client_id)
    will_topic = _b(will_topic)
    will_msg = _b(will_msg if will_msg is not None else b"")
    user = _b(user)
    password = _b(password)
    if not 0 <= keepalive_s <= _U16_MAX:
        raise ValueError("keepalive out of range", keepalive_s)
    if password is not None and user is None:
        raise ValueError("password without user name", None)  # MQTT-3.1.2-22
    if not client_id and not clean_session:
        raise ValueError("empty client id needs clean_session", None)  # MQTT-3.1.3-7
    for f in (client_id, will_topic, will_msg, user, password):
        if f is not None:
            _check_field(f)
    flags = 0x02 if clean_session else 0
    if will_topic is not None:
        _check_qos(will_qos)
        if not will_topic:
            raise ValueError("empty will topic", None)
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
    if user is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    rl = _connect_rl(client_id, will_topic, will_msg, user, password)
    _room(buf, off, 1 + vbi_size(rl) + rl)
    buf[off] = CONNECT << 4
    off = encode_vbi(buf, off + 1, rl)
    off = _put_str(buf, off, b"MQTT")
    buf[off] = 4  # protocol level 4 is MQTT 3.1.1
    buf[off + 1] = flags
    off = _put_u16(buf, off + 2, keepalive_s)
    off = _put_str(buf, off, client_id)
    if will_topic is not None:
        off = _put_str(buf, off, will_topic)
        off = _put_str(buf, off, will_msg)
    if user is not None:
        off = _put_str(buf, off, user)
    if password is not None:
        off = _put_str(buf, off, password)
    return off


# PUBLISH and its acknowledgements ------------------------------------------------------


def publish_size(topic_len, payload_len, qos):
    """Length of a whole PUBLISH packet with these field sizes."""
    rl = 2 + topic_len + payload_len + (2 if qos else 0)
    return 1 + vbi_size(rl) + rl


def check_topic_name(topic):
    """Raise ValueError unless topic (bytes-like) may name a PUBLISH: 1..65535 bytes, no
    wildcard, no NUL (MQTT-4.7.3-1, MQTT-3.3.2-2). No allocation."""
    tlen = len(topic)
    if not 0 < tlen <= _U16_MAX:
        raise ValueError("topic length out of range", tlen)
    for i in range(tlen):
        c = topic[i]
        if c == 0x23 or c == 0x2B or c == 0:
            raise ValueError("wildcard or NUL in topic name", topic)


def encode_publish_header(
    buf, off, topic, payload_len, qos=0, retain=False, dup=False, pid=0, checked=False
):
    """Everything of a PUBLISH but its payload, which the caller writes next (or sends
    from its own object). topic: bytes-like (a str is encoded, allocating); checked=True
    skips check_topic_name (the caller has checked this very topic). Returns the offset
    past the header. No allocation for bytes-like topics."""
    if isinstance(topic, str):
        topic = topic.encode()
    if not checked:
        check_topic_name(topic)
    tlen = len(topic)
    _check_qos(qos)
    if qos:
        _check_pid(pid)
    elif dup:
        raise ValueError("DUP with QoS 0", None)  # MQTT-3.3.1-2
    rl = 2 + tlen + payload_len + (2 if qos else 0)
    if rl > _VBI_MAX:
        raise ValueError("packet too large", rl)
    _room(buf, off, 1 + vbi_size(rl) + rl - payload_len)
    buf[off] = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    off = encode_vbi(buf, off + 1, rl)
    off = _put_str(buf, off, topic)
    if qos:
        off = _put_u16(buf, off, pid)
    return off


def encode_publish(buf, off, topic, msg, qos=0, retain=False, dup=False, pid=0, checked=False):
    """A whole PUBLISH (section 3.3). Returns the offset past it. No allocation for
    bytes-like topic and msg."""
    if isinstance(msg, str):
        msg = msg.encode()
    n = len(msg)
    p = encode_publish_header(buf, off, topic, n, qos, retain, dup, pid, checked)
    _room(buf, p, n)
    buf[p : p + n] = msg
    return p + n


def set_dup(buf, off):
    """Set DUP on the encoded PUBLISH at buf[off] (for a retransmission)."""
    buf[off] |= 0x08


def _encode_ack(buf, off, first, pid):
    _check_pid(pid)
    _room(buf, off, 4)
    buf[off] = first
    buf[off + 1] = 2
    buf[off + 2] = pid >> 8
    buf[off + 3] = pid & 0xFF
    return off + 4


def encode_puback(buf, off, pid):
    return _encode_ack(buf, off, PUBACK << 4, pid)


def encode_pubrec(buf, off, pid):
    return _encode_ack(buf, off, PUBREC << 4, pid)


def encode_pubrel(buf, off, pid):
    return _encode_ack(buf, off, _PUBREL_FIRST, pid)


def encode_pubcomp(buf, off, pid):
    return _encode_ack(buf, off, PUBCOMP << 4, pid)


# SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT --------------------------------------------


def subscribe_size(filters):
    """filters: a sequence of (topic_filter, qos) pairs."""
    rl = 2
    for f, _ in filters:
        rl += 3 + len(_b(f))
    return 1 + vbi_size(rl) + rl


def encode_subscribe(buf, off, pid, filters):
    """SUBSCRIBE (section 3.8) for one or several (topic_filter, qos) pairs."""
    _check_pid(pid)
    if not filters:
        raise ValueError("no topic filters", None)  # MQTT-3.8.3-3
    rl = 2
    for f, qos in filters:
        f = _b(f)
        _check_qos(qos)
        if not f:
            raise ValueError("empty topic filter", None)
        _check_field(f)
        rl += 3 + len(f)
    _room(buf, off, 1 + vbi_size(rl) + rl)
    buf[off] = _SUBSCRIBE_FIRST
    off = encode_vbi(buf, off + 1, rl)
    off = _put_u16(buf, off, pid)
    for f, qos in filters:
        off = _put_str(buf, off, _b(f))
        buf[off] = qos
        off += 1
    return off


def unsubscribe_size(filters):
    """filters: a sequence of topic filters."""
    rl = 2
    for f in filters:
        rl += 2 + len(_b(f))
    return 1 + vbi_size(rl) + rl


def encode_unsubscribe(buf, off, pid, filters):
    """UNSUBSCRIBE (section 3.10) for one or several topic filters."""
    _check_pid(pid)
    if not filters:
        raise ValueError("no topic filters", None)  # MQTT-3.10.3-2
    rl = 2
    for f in filters:
        f = _b(f)
        if not f:
            raise ValueError("empty topic filter", None)
        _check_field(f)
        rl += 2 + len(f)
    _room(buf, off, 1 + vbi_size(rl) + rl)
    buf[off] = _UNSUBSCRIBE_FIRST
    off = encode_vbi(buf, off + 1, rl)
    off = _put_u16(buf, off, pid)
    for f in filters:
        off = _put_str(buf, off, _b(f))
    return off


def encode_pingreq(buf, off):
    _room(buf, off, 2)
    buf[off] = PINGREQ << 4
    buf[off + 1] = 0
    return off + 2


def encode_disconnect(buf, off):
    _room(buf, off, 2)
    buf[off] = DISCONNECT << 4
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
    want = _FLAGS[t]
    if want == 0xFF:
        raise ProtocolError("reserved packet type", t)
    if want == 0x10:
        if flags & 0x06 == 0x06:
            raise ProtocolError("PUBLISH with QoS 3", b0)  # MQTT-3.3.1-4
    elif flags != want:
        raise ProtocolError("reserved flag bits set", b0)  # MQTT-2.2.2-2
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
            raise ProtocolError("remaining length longer than 4 bytes", t)
        shift += 7
    fix = _FIXLEN[t]
    if fix != 0xFF and n != fix:
        raise ProtocolError("wrong remaining length", n)
    pkt.type = t
    pkt.flags = flags
    pkt.rem_len = n
    pkt.hdr_len = i - off
    return i - off


def _u16(buf, off):
    return (buf[off] << 8) | buf[off + 1]


def _pid(buf, off):
    pid = (buf[off] << 8) | buf[off + 1]
    if not pid:
        raise ProtocolError("packet id 0", 0)  # MQTT-2.3.1-1
    return pid


def decode_connack(buf, off, pkt):
    """CONNACK body at buf[off:off+2]: pkt.session_present, pkt.rc (0 = accepted)."""
    ack = buf[off]
    if ack & 0xFE:
        raise ProtocolError("reserved CONNACK flags set", ack)  # MQTT-3.2.2
    pkt.session_present = bool(ack)
    pkt.rc = buf[off + 1]
    if pkt.rc and ack:
        raise ProtocolError("session present with a refusal", pkt.rc)  # MQTT-3.2.2-4


def decode_publish(buf, off, end, flags, pkt):
    """PUBLISH body at buf[off:end]: topic and payload as offsets, qos, dup, retain, pid."""
    qos = (flags >> 1) & 3
    if end - off < 2:
        raise ProtocolError("PUBLISH shorter than its topic length", end - off)
    tlen = _u16(buf, off)
    p = off + 2
    if not tlen:
        raise ProtocolError("empty topic name", 0)  # MQTT-4.7.3-1
    if tlen > end - p:
        raise ProtocolError("topic overruns the packet", tlen)
    for i in range(p, p + tlen):
        c = buf[i]
        if c == 0x23 or c == 0x2B or c == 0:
            raise ProtocolError("wildcard or NUL in topic name", c)  # MQTT-3.3.2-2
    pkt.topic_off = p
    pkt.topic_len = tlen
    p += tlen
    if qos:
        if end - p < 2:
            raise ProtocolError("PUBLISH without its packet id", qos)
        pkt.pid = _pid(buf, p)
        p += 2
    else:
        if flags & 0x08:
            raise ProtocolError("DUP with QoS 0", flags)  # MQTT-3.3.1-2
        pkt.pid = 0
    pkt.qos = qos
    pkt.dup = bool(flags & 0x08)
    pkt.retain = bool(flags & 0x01)
    pkt.payload_off = p
    pkt.payload_len = end - p


def decode_ack(buf, off, pkt):
    """PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK body: pkt.pid."""
    pkt.pid = _pid(buf, off)


def decode_suback(buf, off, end, pkt):
    """SUBACK body: pkt.pid, and the return codes as pkt.codes_off / pkt.codes_len."""
    if end - off < 3:
        raise ProtocolError("SUBACK without return codes", end - off)
    pkt.pid = _pid(buf, off)
    for i in range(off + 2, end):
        c = buf[i]
        if c > 2 and c != 0x80:
            raise ProtocolError("bad SUBACK return code", c)  # MQTT-3.9.3-2
    pkt.codes_off = off + 2
    pkt.codes_len = end - off - 2


def decode_body(buf, off, end, pkt):
    """Decode the body at buf[off:end] of the packet whose header is in pkt. Raises
    ProtocolError for a type a server never sends."""
    t = pkt.type
    if t == PUBLISH:
        decode_publish(buf, off, end, pkt.flags, pkt)
    elif t == PUBACK or t == PUBREC or t == PUBREL or t == PUBCOMP or t == UNSUBACK:
        decode_ack(buf, off, pkt)
    elif t == SUBACK:
        decode_suback(buf, off, end, pkt)
    elif t == CONNACK:
        decode_connack(buf, off, pkt)
    elif t != PINGRESP:
        raise ProtocolError("packet type a server never sends", t)


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
