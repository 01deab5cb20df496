"""An independent, strict MQTT 3.1.1 packet decoder, written from the standard's tables.

CPython only (imported by *_cpython.py tests). It exists to cross-check lib/mote's codec,
so it shares no code with it: it is written from OASIS MQTT 3.1.1 sections 1.5, 2 and 3.

decode(data) -> (packet, consumed): packet is a dict, or None with consumed 0 when data
holds only the start of a packet. Every packet has "type" (the name, e.g. "PUBLISH") and
"flags" (the low nibble of byte 1); the other keys, by type:

    CONNECT      protocol_name, protocol_level, clean_session, keepalive, client_id,
                 will (bool), will_qos, will_retain, will_topic, will_message,
                 username, password   (absent fields are None)
    CONNACK      session_present, return_code
    PUBLISH      dup, qos, retain, topic, pid (None at QoS 0), payload
    PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK
                 pid
    SUBSCRIBE    pid, topics: [(filter, requested_qos), ...]
    SUBACK       pid, return_codes: [int, ...]
    UNSUBSCRIBE  pid, topics: [filter, ...]
    PINGREQ, PINGRESP, DISCONNECT   nothing else

UTF-8 string fields (topics, client id, user name) are str; binary fields (payload, will
message, password) are bytes. Anything the standard calls malformed or forbids raises
SpecError, whose message starts with the conformance statement id where there is one.
"""

import struct

from mqttconst import (  # the packet types, from the standard's table (section 2.2.1)
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
)

NAMES = {
    CONNECT: "CONNECT",
    CONNACK: "CONNACK",
    PUBLISH: "PUBLISH",
    PUBACK: "PUBACK",
    PUBREC: "PUBREC",
    PUBREL: "PUBREL",
    PUBCOMP: "PUBCOMP",
    SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT",
}

# Table 2.2 "Flag Bits": the fixed low nibble of every type but PUBLISH.
FIXED_FLAGS = {
    CONNECT: 0b0000,
    CONNACK: 0b0000,
    PUBACK: 0b0000,
    PUBREC: 0b0000,
    PUBREL: 0b0010,
    PUBCOMP: 0b0000,
    SUBSCRIBE: 0b0010,
    SUBACK: 0b0000,
    UNSUBSCRIBE: 0b0010,
    UNSUBACK: 0b0000,
    PINGREQ: 0b0000,
    PINGRESP: 0b0000,
    DISCONNECT: 0b0000,
}

# Packets whose remaining length the standard fixes (sections 3.2, 3.4-3.7, 3.11-3.14).
FIXED_LENGTH = {
    CONNACK: 2,
    PUBACK: 2,
    PUBREC: 2,
    PUBREL: 2,
    PUBCOMP: 2,
    UNSUBACK: 2,
    PINGREQ: 0,
    PINGRESP: 0,
    DISCONNECT: 0,
}

MAX_REMAINING = 268_435_455  # 2.2.3: four bytes of seven bits
SUBACK_CODES = (0x00, 0x01, 0x02, 0x80)  # 3.9.3


class SpecError(ValueError):
    """The bytes are not a packet the MQTT 3.1.1 standard allows."""


class _Reader:
    """Fields of one packet's variable header and payload, data[pos:end]."""

    def __init__(self, data, pos, end, kind):
        self.data = data
        self.pos = pos
        self.end = end
        self.kind = kind

    def left(self):
        return self.end - self.pos

    def need(self, n, what):
        if self.pos + n > self.end:
            raise SpecError(
                "%s: %s overruns the remaining length (%d bytes short)"
                % (self.kind, what, self.pos + n - self.end)
            )

    def u8(self, what):
        self.need(1, what)
        v = self.data[self.pos]
        self.pos += 1
        return v

    def u16(self, what):
        self.need(2, what)
        (v,) = struct.unpack_from(">H", self.data, self.pos)
        self.pos += 2
        return v

    def pid(self):
        v = self.u16("packet identifier")
        if v == 0:
            raise SpecError("MQTT-2.3.1-1: %s with packet identifier 0" % self.kind)
        return v

    def binary(self, what):
        n = self.u16(what + " length")
        self.need(n, what)
        v = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return v

    def utf8(self, what):
        raw = self.binary(what)
        try:
            s = raw.decode("utf-8")  # strict: no surrogates, overlongs or > U+10FFFF
        except UnicodeDecodeError:
            raise SpecError("MQTT-1.5.3-1: %s: %s is not well-formed UTF-8" % (self.kind, what))
        if "\x00" in s:
            raise SpecError("MQTT-1.5.3-2: %s: %s contains U+0000" % (self.kind, what))
        return s

    def done(self):
        if self.pos != self.end:
            raise SpecError(
                "%s: %d bytes left over after the last field" % (self.kind, self.end - self.pos)
            )


def check_topic_name(kind, topic):
    if not topic:
        raise SpecError("MQTT-4.7.3-1: %s: empty topic name" % kind)
    if "+" in topic or "#" in topic:
        # MQTT-3.3.2-2 for PUBLISH; MQTT-4.7.1-1 for any topic name (the Will Topic).
        rule = "MQTT-3.3.2-2" if kind == "PUBLISH" else "MQTT-4.7.1-1"
        raise SpecError("%s: %s: wildcard in topic name %r" % (rule, kind, topic))


def check_topic_filter(kind, f):
    if not f:
        raise SpecError("MQTT-4.7.3-1: %s: empty topic filter" % kind)
    levels = f.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise SpecError("MQTT-4.7.1-2: %s: misplaced '#' in %r" % (kind, f))
        if "+" in level and level != "+":
            raise SpecError("MQTT-4.7.1-3: %s: '+' not a whole level in %r" % (kind, f))


def decode(data):
    """Decode the packet at the start of data. Returns (packet_dict, bytes consumed), or
    (None, 0) if data is a valid but incomplete start of a packet. Raises SpecError."""
    data = bytes(data)
    if not data:
        return None, 0
    b0 = data[0]
    ptype = b0 >> 4
    flags = b0 & 0x0F
    if ptype not in NAMES:
        raise SpecError("2.2.1: packet type %d is reserved" % ptype)
    kind = NAMES[ptype]
    if ptype == PUBLISH:
        if (flags >> 1) & 3 == 3:
            raise SpecError("MQTT-3.3.1-4: PUBLISH with QoS 3")
        if flags & 0x08 and not flags & 0x06:
            raise SpecError("MQTT-3.3.1-2: PUBLISH with DUP set at QoS 0")
    elif flags != FIXED_FLAGS[ptype]:
        raise SpecError(
            "MQTT-2.2.2-2: %s with flags %s, expected %s"
            % (kind, format(flags, "04b"), format(FIXED_FLAGS[ptype], "04b"))
        )

    # 2.2.3 Remaining Length: 1 to 4 bytes, 7 bits each, least significant first. Unlike
    # MQTT 5 (MQTT-1.5.5-1), 3.1.1 does not require the shortest encoding, so "80 00"
    # (zero in two bytes) is accepted.
    remaining = 0
    shift = 0
    pos = 1
    while True:
        if pos >= len(data):
            return None, 0
        digit = data[pos]
        pos += 1
        remaining |= (digit & 0x7F) << shift
        if not digit & 0x80:
            break
        if pos == 5:
            raise SpecError("2.2.3: %s: remaining length has a fifth byte" % kind)
        shift += 7
    want = FIXED_LENGTH.get(ptype)
    if want is not None and remaining != want:
        raise SpecError("%s: remaining length %d, the standard fixes %d" % (kind, remaining, want))
    end = pos + remaining
    if end > len(data):
        return None, 0

    r = _Reader(data, pos, end, kind)
    pkt = {"type": kind, "flags": flags}
    _DECODERS[ptype](r, flags, pkt)
    r.done()
    return pkt, end


def _connect(r, flags, pkt):
    # 3.1.2.1: the protocol name is the UTF-8 string "MQTT", exactly.
    name = r.binary("protocol name")
    if name != b"MQTT":
        raise SpecError("MQTT-3.1.2-1: CONNECT protocol name %r, expected 'MQTT'" % name)
    level = r.u8("protocol level")
    if level != 4:
        raise SpecError("MQTT-3.1.2-2: CONNECT protocol level %d, expected 4" % level)
    cf = r.u8("connect flags")
    if cf & 0x01:
        raise SpecError("MQTT-3.1.2-3: CONNECT reserved flag bit 0 is set")
    clean = bool(cf & 0x02)
    will = bool(cf & 0x04)
    will_qos = (cf >> 3) & 3
    will_retain = bool(cf & 0x20)
    has_password = bool(cf & 0x40)
    has_user = bool(cf & 0x80)
    if not will and will_qos:
        raise SpecError("MQTT-3.1.2-13: CONNECT Will QoS %d without the Will flag" % will_qos)
    if not will and will_retain:
        raise SpecError("MQTT-3.1.2-15: CONNECT Will Retain without the Will flag")
    if will_qos == 3:
        raise SpecError("MQTT-3.1.2-14: CONNECT Will QoS 3")
    if has_password and not has_user:
        raise SpecError("MQTT-3.1.2-22: CONNECT password flag without the user name flag")
    keepalive = r.u16("keep alive")

    # 3.1.3 payload, in this order: client id, will topic, will message, user, password.
    client_id = r.utf8("client identifier")
    if not client_id and not clean:
        raise SpecError("MQTT-3.1.3-7: CONNECT zero-length client id with CleanSession 0")
    will_topic = will_message = username = password = None
    if will:
        will_topic = r.utf8("will topic")
        check_topic_name(r.kind, will_topic)
        will_message = r.binary("will message")
    if has_user:
        username = r.utf8("user name")
    if has_password:
        password = r.binary("password")
    pkt.update(
        protocol_name="MQTT",
        protocol_level=level,
        clean_session=clean,
        keepalive=keepalive,
        client_id=client_id,
        will=will,
        will_qos=will_qos,
        will_retain=will_retain,
        will_topic=will_topic,
        will_message=will_message,
        username=username,
        password=password,
    )


def _connack(r, flags, pkt):
    ack = r.u8("connect acknowledge flags")
    if ack & 0xFE:
        raise SpecError("3.2.2.1: CONNACK reserved acknowledge flag bits 7-1 set")
    rc = r.u8("return code")
    if rc > 5:
        raise SpecError("3.2.2.3: CONNACK return code %d is reserved" % rc)
    if rc and ack & 1:
        raise SpecError("MQTT-3.2.2-4: CONNACK refusal %d with Session Present set" % rc)
    pkt.update(session_present=bool(ack & 1), return_code=rc)


def _publish(r, flags, pkt):
    qos = (flags >> 1) & 3
    topic = r.utf8("topic name")
    check_topic_name(r.kind, topic)
    pid = r.pid() if qos else None  # 3.3.2.2: only at QoS 1 and 2
    payload = bytes(r.data[r.pos : r.end])  # 3.3.3: the rest, possibly empty
    r.pos = r.end
    pkt.update(
        dup=bool(flags & 8),
        qos=qos,
        retain=bool(flags & 1),
        topic=topic,
        pid=pid,
        payload=payload,
    )


def _pid_only(r, flags, pkt):
    pkt["pid"] = r.pid()


def _subscribe(r, flags, pkt):
    pkt["pid"] = r.pid()
    topics = []
    while r.left():
        f = r.utf8("topic filter")
        check_topic_filter(r.kind, f)
        q = r.u8("requested QoS")
        if q & 0xFC or q == 3:
            raise SpecError("MQTT-3.8.3-4: SUBSCRIBE requested QoS byte 0x%02x" % q)
        topics.append((f, q))
    if not topics:
        raise SpecError("MQTT-3.8.3-3: SUBSCRIBE with no topic filter")
    pkt["topics"] = topics


def _suback(r, flags, pkt):
    pkt["pid"] = r.pid()
    codes = []
    while r.left():
        c = r.u8("return code")
        if c not in SUBACK_CODES:
            raise SpecError("MQTT-3.9.3-2: SUBACK return code 0x%02x is reserved" % c)
        codes.append(c)
    if not codes:
        raise SpecError("3.9.3: SUBACK with no return code")
    pkt["return_codes"] = codes


def _unsubscribe(r, flags, pkt):
    pkt["pid"] = r.pid()
    topics = []
    while r.left():
        f = r.utf8("topic filter")
        check_topic_filter(r.kind, f)
        topics.append(f)
    if not topics:
        raise SpecError("MQTT-3.10.3-2: UNSUBSCRIBE with no topic filter")
    pkt["topics"] = topics


def _empty(r, flags, pkt):
    pass


_DECODERS = {
    CONNECT: _connect,
    CONNACK: _connack,
    PUBLISH: _publish,
    PUBACK: _pid_only,
    PUBREC: _pid_only,
    PUBREL: _pid_only,
    PUBCOMP: _pid_only,
    SUBSCRIBE: _subscribe,
    SUBACK: _suback,
    UNSUBSCRIBE: _unsubscribe,
    UNSUBACK: _pid_only,
    PINGREQ: _empty,
    PINGRESP: _empty,
    DISCONNECT: _empty,
}


def decode_all(data):
    """Decode a stream of whole packets; raises SpecError if it ends mid-packet."""
    out = []
    data = bytes(data)
    while data:
        pkt, n = decode(data)
        if pkt is None:
            raise SpecError("stream ends inside a packet (%d bytes left)" % len(data))
        out.append(pkt)
        data = data[n:]
    return out
