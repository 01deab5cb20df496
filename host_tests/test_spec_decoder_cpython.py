# spec_decoder (CPython only): golden packets written by hand from the MQTT 3.1.1 tables,
# every malformation the standard names, and paho-mqtt 2.2's encoder as a second opinion.
import pytest
from spec_decoder import SpecError, decode, decode_all


def h(s):
    return bytes.fromhex(s)


# (hex, expected fields): one space-separated group per field.
GOLDEN = [
    # 3.1 CONNECT: "MQTT", level 4, CleanSession, keep alive 60 s, client id "mote"
    (
        "10 10 0004 4d515454 04 02 003c 0004 6d6f7465",
        dict(
            type="CONNECT",
            protocol_name="MQTT",
            protocol_level=4,
            clean_session=True,
            keepalive=60,
            client_id="mote",
            will=False,
            will_qos=0,
            will_retain=False,
            will_topic=None,
            will_message=None,
            username=None,
            password=None,
        ),
    ),
    # CONNECT with every field: flags 0xec = user, password, will retain, will QoS 1, will
    (
        "10 20 0004 4d515454 04 ec 012c 0002 6331 0004 732f7374 0003 6f6666 0001 75 0002 7077",
        dict(
            type="CONNECT",
            clean_session=False,
            keepalive=300,
            client_id="c1",
            will=True,
            will_qos=1,
            will_retain=True,
            will_topic="s/st",
            will_message=b"off",
            username="u",
            password=b"pw",
        ),
    ),
    # the standard's variable header example (3.1.2.10): flags 0xce, keep alive 10
    (
        "10 1c 0004 4d515454 04 ce 000a 0001 63 0001 74 0002 6d31 0002 7531 0002 7031",
        dict(
            type="CONNECT",
            clean_session=True,
            keepalive=10,
            will=True,
            will_qos=1,
            will_retain=False,
            will_topic="t",
            will_message=b"m1",
            username="u1",
            password=b"p1",
        ),
    ),
    # zero-length client id is allowed with CleanSession 1 (MQTT-3.1.3-6)
    ("10 0c 0004 4d515454 04 02 0000 0000", dict(type="CONNECT", client_id="")),
    # user name without password; empty password
    (
        "10 11 0004 4d515454 04 82 0000 0001 63 0002 7531",
        dict(type="CONNECT", username="u1", password=None),
    ),
    (
        "10 11 0004 4d515454 04 c2 0000 0001 63 0000 0000",
        dict(type="CONNECT", username="", password=b""),
    ),
    # 3.2 CONNACK
    ("20 02 00 00", dict(type="CONNACK", session_present=False, return_code=0)),
    ("20 02 01 00", dict(type="CONNACK", session_present=True, return_code=0)),
    ("20 02 00 05", dict(type="CONNACK", session_present=False, return_code=5)),
    # 3.3 PUBLISH: the example variable header is topic "a/b", packet id 10
    (
        "32 09 0003 612f62 000a 6869",
        dict(type="PUBLISH", qos=1, dup=False, retain=False, topic="a/b", pid=10, payload=b"hi"),
    ),
    (
        "30 0a 0003 612f62 68656c6c6f",
        dict(type="PUBLISH", qos=0, pid=None, topic="a/b", payload=b"hello"),
    ),
    ("31 03 0001 61", dict(type="PUBLISH", qos=0, retain=True, payload=b"")),
    (
        "3d 07 0003 612f62 ffff",
        dict(type="PUBLISH", qos=2, dup=True, retain=True, pid=65535, payload=b""),
    ),
    ("3a 05 0001 24 0001", dict(type="PUBLISH", qos=1, dup=True, topic="$", pid=1)),
    ("30 05 0003 c3a92f", dict(type="PUBLISH", topic="é/")),
    ("30 04 0001 2f 00", dict(type="PUBLISH", topic="/", payload=b"\x00")),
    # 3.4-3.7 the acknowledgements
    ("40 02 0007", dict(type="PUBACK", pid=7)),
    ("50 02 0007", dict(type="PUBREC", pid=7)),
    ("62 02 0007", dict(type="PUBREL", pid=7)),
    ("70 02 ffff", dict(type="PUBCOMP", pid=65535)),
    # 3.8 SUBSCRIBE: the standard's payload example, "a/b" QoS 1 and "c/d" QoS 2
    (
        "82 0e 000a 0003 612f62 01 0003 632f64 02",
        dict(type="SUBSCRIBE", pid=10, topics=[("a/b", 1), ("c/d", 2)]),
    ),
    ("82 06 0001 0001 23 00", dict(type="SUBSCRIBE", pid=1, topics=[("#", 0)])),
    (
        "82 0e 000a 0003 2b2f2b 01 0003 2f2f23 02",
        dict(type="SUBSCRIBE", topics=[("+/+", 1), ("//#", 2)]),
    ),
    # 3.9 SUBACK: the standard's example return codes
    ("90 06 000a 00 01 02 80", dict(type="SUBACK", pid=10, return_codes=[0, 1, 2, 0x80])),
    # 3.10 UNSUBSCRIBE, 3.11 UNSUBACK
    (
        "a2 0c 000b 0003 612f62 0003 632f2b",
        dict(type="UNSUBSCRIBE", pid=11, topics=["a/b", "c/+"]),
    ),
    ("b0 02 000b", dict(type="UNSUBACK", pid=11)),
    # 3.12-3.14
    ("c0 00", dict(type="PINGREQ")),
    ("d0 00", dict(type="PINGRESP")),
    ("e0 00", dict(type="DISCONNECT")),
]


@pytest.mark.parametrize("hexs,want", GOLDEN, ids=[g[1]["type"] for g in GOLDEN])
def test_golden_packet_decodes_to_its_fields(hexs, want):
    data = h(hexs)
    pkt, n = decode(data)
    assert n == len(data)
    for k, v in want.items():
        assert pkt[k] == v, k


@pytest.mark.parametrize("hexs,want", GOLDEN, ids=[g[1]["type"] for g in GOLDEN])
def test_every_truncation_of_a_golden_packet_needs_more(hexs, want):
    data = h(hexs)
    for i in range(len(data)):
        assert decode(data[:i]) == (None, 0), i


@pytest.mark.parametrize("hexs,want", GOLDEN, ids=[g[1]["type"] for g in GOLDEN])
def test_decode_consumes_one_packet_and_leaves_the_rest(hexs, want):
    data = h(hexs)
    pkt, n = decode(data + h("c0 00") + data)
    assert n == len(data)
    assert pkt["type"] == want["type"]


def test_decode_all_splits_a_stream():
    stream = b"".join(h(g[0]) for g in GOLDEN)
    assert [p["type"] for p in decode_all(stream)] == [g[1]["type"] for g in GOLDEN]
    with pytest.raises(SpecError):
        decode_all(stream[:-1])


def test_bytearray_and_memoryview_input():
    data = h("32 09 0003 612f62 000a 6869")
    assert decode(bytearray(data)) == decode(memoryview(data)) == decode(data)


# (hex, a piece of the message): every malformation the standard names.
MALFORMED = [
    # 2.2.1 reserved packet types
    ("00 00", "reserved"),
    ("f0 00", "reserved"),
    # 2.2.2 reserved flag bits (Table 2.2)
    ("11 00", "MQTT-2.2.2-2"),
    ("28 02 00 00", "MQTT-2.2.2-2"),
    ("42 02 0001", "MQTT-2.2.2-2"),
    ("51 02 0001", "MQTT-2.2.2-2"),
    ("60 02 0001", "MQTT-2.2.2-2"),  # PUBREL needs 0010
    ("6a 02 0001", "MQTT-2.2.2-2"),
    ("78 02 0001", "MQTT-2.2.2-2"),
    ("80 06 0001 0001 23 00", "MQTT-2.2.2-2"),  # SUBSCRIBE needs 0010
    ("8a 06 0001 0001 23 00", "MQTT-2.2.2-2"),
    ("94 03 0001 00", "MQTT-2.2.2-2"),
    ("a0 05 0001 0001 23", "MQTT-2.2.2-2"),  # UNSUBSCRIBE needs 0010
    ("a3 05 0001 0001 23", "MQTT-2.2.2-2"),
    ("b2 02 0001", "MQTT-2.2.2-2"),
    ("c1 00", "MQTT-2.2.2-2"),
    ("d8 00", "MQTT-2.2.2-2"),
    ("e2 00", "MQTT-2.2.2-2"),
    # 2.2.3 remaining length: at most four bytes
    ("c0 ff ff ff ff 01", "fifth byte"),
    ("30 80 80 80 80 00", "fifth byte"),
    # 3.3.1 PUBLISH flags
    ("36 05 0001 61 0001", "MQTT-3.3.1-4"),
    ("3f 05 0001 61 0001", "MQTT-3.3.1-4"),
    ("38 03 0001 61", "MQTT-3.3.1-2"),
    # fixed remaining lengths
    ("20 03 00 00 00", "fixes 2"),
    ("20 01 00", "fixes 2"),
    ("40 03 0001 00", "fixes 2"),
    ("40 01 00", "fixes 2"),
    ("50 00", "fixes 2"),
    ("62 04 0001 0001", "fixes 2"),
    ("70 01 01", "fixes 2"),
    ("b0 03 0001 00", "fixes 2"),
    ("c0 01 00", "fixes 0"),
    ("d0 01 00", "fixes 0"),
    ("e0 02 0000", "fixes 0"),
    # MQTT-2.3.1-1: packet identifier 0
    ("32 07 0003 612f62 0000", "MQTT-2.3.1-1"),
    ("34 05 0001 61 0000", "MQTT-2.3.1-1"),
    ("40 02 0000", "MQTT-2.3.1-1"),
    ("50 02 0000", "MQTT-2.3.1-1"),
    ("62 02 0000", "MQTT-2.3.1-1"),
    ("70 02 0000", "MQTT-2.3.1-1"),
    ("82 06 0000 0001 23 00", "MQTT-2.3.1-1"),
    ("90 03 0000 00", "MQTT-2.3.1-1"),
    ("a2 05 0000 0001 23", "MQTT-2.3.1-1"),
    ("b0 02 0000", "MQTT-2.3.1-1"),
    # PUBLISH topic name
    ("30 05 0003 612f2b", "MQTT-3.3.2-2"),
    ("30 05 0003 612f23", "MQTT-3.3.2-2"),
    ("30 03 0001 23", "MQTT-3.3.2-2"),
    ("30 02 0000", "MQTT-4.7.3-1"),
    ("30 04 0003 612f", "overruns"),  # topic length past the packet
    ("30 01 00", "overruns"),  # half a length field
    ("32 05 0003 612f62", "overruns"),  # QoS 1 without its packet id
    ("32 06 0003 612f62 00", "overruns"),
    ("30 03 0001 ff", "MQTT-1.5.3-1"),
    ("30 05 0003 eda080", "MQTT-1.5.3-1"),  # an encoded surrogate, U+D800
    ("30 04 0002 c080", "MQTT-1.5.3-1"),  # overlong NUL
    ("30 03 0001 00", "MQTT-1.5.3-2"),
    # 3.1 CONNECT
    ("10 12 0006 4d5149736470 03 02 003c 0004 6d6f7465", "MQTT-3.1.2-1"),  # 3.1's MQIsdp
    ("10 10 0004 6d717474 04 02 003c 0004 6d6f7465", "MQTT-3.1.2-1"),  # case matters
    ("10 10 0004 4d515454 03 02 003c 0004 6d6f7465", "MQTT-3.1.2-2"),
    ("10 10 0004 4d515454 05 02 003c 0004 6d6f7465", "MQTT-3.1.2-2"),
    ("10 10 0004 4d515454 04 03 003c 0004 6d6f7465", "MQTT-3.1.2-3"),
    ("10 10 0004 4d515454 04 0a 003c 0004 6d6f7465", "MQTT-3.1.2-13"),  # Will QoS, no Will
    ("10 10 0004 4d515454 04 12 003c 0004 6d6f7465", "MQTT-3.1.2-13"),
    ("10 10 0004 4d515454 04 22 003c 0004 6d6f7465", "MQTT-3.1.2-15"),  # Will Retain, no Will
    ("10 15 0004 4d515454 04 1e 003c 0004 6d6f7465 0001 74 0000", "MQTT-3.1.2-14"),
    ("10 12 0004 4d515454 04 42 003c 0004 6d6f7465 0000", "MQTT-3.1.2-22"),
    ("10 0c 0004 4d515454 04 00 003c 0000", "MQTT-3.1.3-7"),
    ("10 0a 0004 4d515454 04 02 003c", "overruns"),  # no client id
    ("10 10 0004 4d515454 04 06 003c 0004 6d6f7465", "overruns"),  # Will flag, no topic
    ("10 13 0004 4d515454 04 06 003c 0004 6d6f7465 0001 74", "overruns"),  # no message
    ("10 10 0004 4d515454 04 82 003c 0004 6d6f7465", "overruns"),  # user flag, no user
    ("10 12 0004 4d515454 04 c2 003c 0004 6d6f7465 0001", "overruns"),
    ("10 11 0004 4d515454 04 02 003c 0004 6d6f7465 00", "left over"),
    ("10 12 0004 4d515454 04 06 003c 0001 63 0001 23 0000", "MQTT-4.7.1-1"),  # will topic
    ("10 11 0004 4d515454 04 06 003c 0001 63 0000 0000", "MQTT-4.7.3-1"),
    ("10 0d 0004 4d515454 04 02 003c 0001 ff", "MQTT-1.5.3-1"),  # client id
    ("10 0f 0004 4d515454 04 82 003c 0000 0001 00", "MQTT-1.5.3-2"),  # user name
    ("10 05 0004 4d515454", "overruns"),
    # 3.2 CONNACK
    ("20 02 02 00", "reserved"),
    ("20 02 80 00", "reserved"),
    ("20 02 00 06", "reserved"),
    ("20 02 00 ff", "reserved"),
    ("20 02 01 05", "MQTT-3.2.2-4"),
    # 3.8 SUBSCRIBE
    ("82 02 000a", "MQTT-3.8.3-3"),
    ("82 06 000a 0001 23 03", "MQTT-3.8.3-4"),
    ("82 06 000a 0001 23 04", "MQTT-3.8.3-4"),
    ("82 06 000a 0001 23 81", "MQTT-3.8.3-4"),
    ("82 05 000a 0001 23", "overruns"),  # filter without its QoS byte
    ("82 09 000a 0001 23 00 0001 2b", "overruns"),
    ("82 08 000a 0003 612b62 00", "MQTT-4.7.1-3"),
    ("82 08 000a 0003 23 2f 61 00", "MQTT-4.7.1-2"),
    ("82 07 000a 0002 6123 00", "MQTT-4.7.1-2"),
    ("82 05 000a 0000 00", "MQTT-4.7.3-1"),
    ("82 06 000a 0001 00 00", "MQTT-1.5.3-2"),
    ("82 01 00", "overruns"),
    # 3.9 SUBACK
    ("90 02 000a", "no return code"),
    ("90 03 000a 03", "MQTT-3.9.3-2"),
    ("90 04 000a 00 7f", "MQTT-3.9.3-2"),
    ("90 03 000a 81", "MQTT-3.9.3-2"),
    # 3.10 UNSUBSCRIBE
    ("a2 02 000b", "MQTT-3.10.3-2"),
    ("a2 06 000b 0002 2b61", "MQTT-4.7.1-3"),
    ("a2 04 000b 0000", "MQTT-4.7.3-1"),
    ("a2 06 000b 0003 6162", "overruns"),
]


@pytest.mark.parametrize("hexs,why", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_packet_raises_spec_error_naming_the_rule(hexs, why):
    with pytest.raises(SpecError) as e:
        decode(h(hexs))
    assert why in str(e.value)


def test_bad_first_byte_is_reported_before_the_rest_arrives():
    for first in ("00", "f0", "36", "38", "60", "80", "a0", "c1"):
        with pytest.raises(SpecError):
            decode(h(first))


def test_wrong_fixed_length_is_reported_before_the_body_arrives():
    with pytest.raises(SpecError):
        decode(h("40 05"))
    with pytest.raises(SpecError):
        decode(h("c0 7f"))


def test_fifth_length_byte_is_reported_before_the_body_arrives():
    with pytest.raises(SpecError):
        decode(h("30 ff ff ff ff"))
    assert decode(h("30 ff ff ff")) == (None, 0)


@pytest.mark.parametrize(
    "remaining,field",
    [
        (3, "03"),
        (127, "7f"),
        (128, "80 01"),
        (16383, "ff 7f"),
        (16384, "80 80 01"),
        (2097151, "ff ff 7f"),
        (2097152, "80 80 80 01"),
    ],
)
def test_remaining_length_boundaries(remaining, field):
    data = h("30 " + field + " 0001 61") + b"x" * (remaining - 3)
    pkt, n = decode(data)
    assert n == len(data)
    assert len(pkt["payload"]) == remaining - 3
    assert decode(data[:-1]) == (None, 0)


def test_largest_remaining_length_is_a_valid_incomplete_packet():
    assert decode(h("30 ff ff ff 7f 0001 61")) == (None, 0)


def test_non_minimal_remaining_length_is_accepted_in_3_1_1():
    # Only MQTT 5 (MQTT-1.5.5-1) demands the shortest encoding; 3.1.1 section 2.2.3 does not.
    assert decode(h("c0 80 00")) == ({"type": "PINGREQ", "flags": 0}, 3)
    assert decode(h("c0 80 80 80 00")) == ({"type": "PINGREQ", "flags": 0}, 5)
    pkt, n = decode(h("30 85 80 00 0001 61 7879"))
    assert (pkt["topic"], pkt["payload"], n) == ("a", b"xy", 9)


def test_longest_strings():
    topic = "t" * 65535
    data = h("30 82 80 04 ffff") + topic.encode() + b"p"
    pkt, n = decode(data)
    assert pkt["topic"] == topic and pkt["payload"] == b"p" and n == len(data)


# paho-mqtt 2.2 as an independent encoder: its private _send_* methods build the bytes and
# hand them to _packet_queue, which this subclass captures instead of writing to a socket.
paho = pytest.importorskip("paho.mqtt.client")


class _NoSocket:
    def close(self):
        pass


class PahoBytes(paho.Client):
    def __init__(self, client_id="", clean_session=True):
        super().__init__(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
        )
        self._sock = _NoSocket()  # _send_publish refuses to build without one
        self.out = []

    def _packet_queue(self, command, packet, mid, qos, info=None):
        self.out.append(bytes(packet))
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    def one(self):
        assert len(self.out) == 1
        data = self.out.pop()
        pkt, n = decode(data)
        assert n == len(data)
        return pkt


def test_paho_connect_minimal():
    c = PahoBytes("sensor-1")
    c._send_connect(60)
    p = c.one()
    assert p["type"] == "CONNECT" and p["protocol_level"] == 4
    assert (p["client_id"], p["keepalive"], p["clean_session"]) == ("sensor-1", 60, True)
    assert not p["will"] and p["username"] is None and p["password"] is None


def test_paho_connect_with_will_user_and_password():
    c = PahoBytes("n2", clean_session=False)
    c.will_set("mote/n2/status", b"offline", qos=2, retain=True)
    c.username_pw_set("user", "sécret")
    c._send_connect(65535)
    p = c.one()
    assert (p["clean_session"], p["keepalive"]) == (False, 65535)
    assert (p["will"], p["will_qos"], p["will_retain"]) == (True, 2, True)
    assert (p["will_topic"], p["will_message"]) == ("mote/n2/status", b"offline")
    assert (p["username"], p["password"]) == ("user", "sécret".encode())


def test_paho_connect_user_without_password():
    c = PahoBytes("n3")
    c.username_pw_set("only-user")
    c._send_connect(0)
    p = c.one()
    assert (p["username"], p["password"]) == ("only-user", None)


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("size", [0, 1, 120, 200, 16400, 70000])
def test_paho_publish(qos, size):
    c = PahoBytes("p")
    payload = bytes(i & 0xFF for i in range(size))
    mid = 0 if qos == 0 else 4242
    c._send_publish(mid, "a/é/c".encode(), payload, qos, retain=bool(size & 1), dup=qos > 0)
    p = c.one()
    assert (p["topic"], p["payload"], p["qos"]) == ("a/é/c", payload, qos)
    assert p["pid"] == (None if qos == 0 else 4242)
    assert p["retain"] == bool(size & 1) and p["dup"] == (qos > 0)


def test_paho_acknowledgements():
    c = PahoBytes("a")
    c._send_puback(1)
    assert c.one() == {"type": "PUBACK", "flags": 0, "pid": 1}
    c._send_pubrec(2)
    assert c.one() == {"type": "PUBREC", "flags": 0, "pid": 2}
    c._send_pubrel(3)
    assert c.one() == {"type": "PUBREL", "flags": 2, "pid": 3}
    c._send_pubcomp(65535)
    assert c.one() == {"type": "PUBCOMP", "flags": 0, "pid": 65535}


def test_paho_subscribe_and_unsubscribe():
    c = PahoBytes("s")
    c._send_subscribe(False, [(b"a/+", 1), (b"#", 0), (b"$SYS/#", 2)])
    p = c.one()
    assert p["type"] == "SUBSCRIBE" and p["pid"] >= 1
    assert p["topics"] == [("a/+", 1), ("#", 0), ("$SYS/#", 2)]
    c._send_unsubscribe(False, [b"a/+", b"b"])
    p = c.one()
    assert p["type"] == "UNSUBSCRIBE" and p["topics"] == ["a/+", "b"]


def test_paho_simple_commands():
    c = PahoBytes("z")
    c._send_pingreq()
    assert c.one()["type"] == "PINGREQ"
    c._send_pingresp()
    assert c.one()["type"] == "PINGRESP"
    c._send_disconnect()
    assert c.one()["type"] == "DISCONNECT"


def test_paho_stream_every_split_point_needs_more_until_whole():
    c = PahoBytes("w")
    c._send_publish(9, b"x/y", b"z" * 300, 1)
    c._send_pingreq()
    stream = b"".join(c.out)
    first = len(c.out[0])
    for i in range(first):
        assert decode(stream[:i]) == (None, 0)
    assert [p["type"] for p in decode_all(stream)] == ["PUBLISH", "PINGREQ"]
