# The client against a real mosquitto on both interpreters (issue 3 item 5): QoS 0/1/2 both
# ways, retained messages, the Last Will, persistent sessions, keepalive against a silent
# broker, receive buffer limits, TLS (CA, wrong CA, wrong host, no CA, mutual TLS) and
# credentials. The client runs in a scenario subprocess; a paho-mqtt peer is the other side.
import binascii

import fakebroker
import mpclient
import pytest
import scenario

HEX = "import binascii\ndef hx(b):\n    return binascii.hexlify(b).decode()\n"


def params(broker, interp, name, **extra):
    """Scenario PARAMS with a client id and a topic root of this test and interpreter."""
    return mpclient.broker_params(
        broker,
        interp=interp,
        cid="%s-%s" % (name, interp),
        topic="t/%s/%s" % (name, interp),
        **extra,
    )


def ok_run(interp, code, p, timeout=30):
    rc, out = scenario.run(interp, code, p, timeout)
    assert rc == 0, out
    return out.splitlines()


def lines_with(lines, prefix):
    return [x for x in lines if x.startswith(prefix)]


# -- QoS 0/1/2 both ways -----------------------------------------------------------------

PUBLISH_ALL = """
from mote import MQTTClient
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"])
print("SP", c.connect())
base = PARAMS["topic"].encode()
for q in (0, 1, 2):
    for i in range(3):
        print("PID", c.publish(base + b"/q%d" % q, bytes([q, i, 0, 255]) + b"m%d" % i, qos=q))
print("PID", c.publish(base + b"/ba", bytearray(b"from a bytearray"), qos=1))
print("PID", c.publish(base + b"/empty", b"", qos=2))
print("PENDING", c.flush(5000))
c.disconnect()
print("DONE")
"""


@scenario.interp_param()
def test_client_publishes_qos_0_1_2_and_paho_receives_each_exactly_once(interp, broker):
    p = params(broker, interp, "pubq")
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe(p["topic"] + "/#", 2)
        lines = ok_run(interp, PUBLISH_ALL, p)
        got = peer.get(11)
        assert peer.get(1, timeout=0.3) == []  # nothing more: no duplicates
    assert lines_with(lines, "PID") == ["PID %d" % x for x in (0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8)]
    assert "PENDING 0" in lines and lines[-1] == "DONE"
    want = [
        ("%s/q%d" % (p["topic"], q), bytes([q, i, 0, 255]) + b"m%d" % i, q, False)
        for q in range(3)
        for i in range(3)
    ]
    want += [
        (p["topic"] + "/ba", b"from a bytearray", 1, False),
        (p["topic"] + "/empty", b"", 2, False),
    ]
    assert sorted(got) == sorted(want)
    for q in range(3):  # in order within one QoS
        assert [m for m in got if m[2] == q and "/q" in m[0]] == [w for w in want[:9] if w[2] == q]


RECEIVE = (
    HEX
    + """
import time
from mote import MQTTClient
got = []
def cb(t, m):
    got.append((t, m, c.msg_qos, c.msg_retain))
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"], keepalive=10)
c.set_callback(cb)
print("SP", c.connect())
print("GRANTED", c.subscribe(PARAMS["topic"].encode() + b"/#", PARAMS.get("subq", 2)))
print("READY")
t0 = time.time()
while len(got) < PARAMS["n"] and time.time() - t0 < 10:
    c.wait_msg()
for t, m, q, r in got:
    print("GOT", t.decode(), q, r, hx(m), type(t).__name__, type(m).__name__)
print("STATS", c.stats()["received"])
c.disconnect()
print("DONE")
"""
)


@scenario.interp_param()
def test_paho_publishes_qos_0_1_2_and_the_callback_gets_bytes(interp, broker):
    p = params(broker, interp, "recvq", n=9)
    sent = []
    with (
        scenario.Peer(broker.host, broker.port) as peer,
        scenario.Process(interp, RECEIVE, p) as sc,
    ):
        sc.expect("READY")
        for q in range(3):
            for i in range(3):
                msg = (p["topic"] + "/q%d" % q, bytes([i, 0, 255, q]) * (i + 1))
                peer.publish(msg[0], msg[1], qos=q)
                sent.append(msg + (q,))
        rc, out = sc.wait(15)
    lines = out.splitlines()
    assert rc == 0, out
    assert "GRANTED 2" in lines and "SP False" in lines
    got = lines_with(lines, "GOT")
    want = [
        "GOT %s %d False %s bytes bytes" % (t, q, binascii.hexlify(m).decode()) for t, m, q in sent
    ]
    assert sorted(got) == sorted(want), out
    assert "STATS 9" in lines


@scenario.interp_param()
def test_granted_qos_caps_delivery_qos(interp, broker):
    p = params(broker, interp, "capq", n=3, subq=1)
    with (
        scenario.Peer(broker.host, broker.port) as peer,
        scenario.Process(interp, RECEIVE, p) as sc,
    ):
        sc.expect("READY")
        for q in range(3):
            peer.publish(p["topic"] + "/x", b"q%d" % q, qos=q)
        rc, out = sc.wait(15)
    assert rc == 0, out
    got = lines_with(out.splitlines(), "GOT")
    hx = binascii.hexlify
    want = [
        "GOT %s/x %d False %s bytes bytes" % (p["topic"], min(q, 1), hx(b"q%d" % q).decode())
        for q in range(3)
    ]
    assert sorted(got) == sorted(want), out
    assert "GRANTED 1" in out


# -- retained messages -----------------------------------------------------------------------

RETAINED = """
import time
from mote import MQTTClient
got = []
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"])
c.set_callback(lambda t, m: got.append((t, m, c.msg_retain, c.msg_qos)))
c.connect()
base = PARAMS["topic"].encode()
c.subscribe(base + b"/old", 1)
t0 = time.time()
while not got and time.time() - t0 < 5:
    c.wait_msg()
print("FIRST", got)
print("READY")
while len(got) < 2 and time.time() - t0 < 10:
    c.wait_msg()
print("LIVE", got[1:])
c.publish(base + b"/mine", b"kept by the broker", retain=True, qos=1)
print("PENDING", c.flush(5000))
c.disconnect()
print("DONE")
"""


@scenario.interp_param()
def test_retained_messages_both_ways(interp, broker):
    p = params(broker, interp, "ret")
    t = p["topic"]
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.publish(t + "/old", b"set before", qos=1, retain=True)
        with scenario.Process(interp, RETAINED, p) as sc:
            sc.expect("READY")
            peer.publish(t + "/old", b"live one", qos=1, retain=True)
            rc, out = sc.wait(15)
        assert rc == 0, out
        lines = out.splitlines()
        # Stored retained message: retain flag set. One published while subscribed: not.
        assert "FIRST [(%r, %r, True, 1)]" % (t.encode() + b"/old", b"set before") in lines, out
        assert "LIVE [(%r, %r, False, 1)]" % (t.encode() + b"/old", b"live one") in lines, out
        assert "PENDING 0" in lines
        with scenario.Peer(broker.host, broker.port) as late:
            late.subscribe(t + "/mine", 1)
            assert late.get(1) == [(t + "/mine", b"kept by the broker", 1, True)]
        for sub in ("/old", "/mine"):  # clear them
            peer.publish(t + sub, b"", qos=1, retain=True)


# -- Last Will ----------------------------------------------------------------------------

WILL = """
import sys
from mote import MQTTClient
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"], keepalive=30)
c.set_last_will(PARAMS["topic"].encode() + b"/will", b"gone " + PARAMS["interp"].encode(), qos=1)
c.connect()
c.publish(PARAMS["topic"].encode() + b"/alive", b"yes", qos=1)
c.flush(5000)
print("READY")
how = PARAMS["how"]
if how == "close":
    c.sock.close()  # no DISCONNECT: the broker sees the socket die
    print("CLOSED")
elif how == "disconnect":
    c.disconnect()
    print("DISCONNECTED")
else:
    sys.stdin.readline()  # wait to be killed
"""


@scenario.interp_param()
@pytest.mark.parametrize("how", ["close", "kill"])
def test_will_is_delivered_when_the_socket_dies(interp, how, broker):
    p = params(broker, interp, "will" + how, how=how)
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe(p["topic"] + "/#", 1)
        with scenario.Process(interp, WILL, p) as sc:
            sc.expect("READY")
            assert peer.get(1) == [(p["topic"] + "/alive", b"yes", 1, False)]
            if how == "kill":
                sc.kill()
            else:
                rc, out = sc.wait(10)
                assert rc == 0 and "CLOSED" in out, out
        got = peer.get(1)
    assert got == [(p["topic"] + "/will", b"gone " + interp.encode(), 1, False)]


@scenario.interp_param()
def test_will_is_not_delivered_after_disconnect(interp, broker):
    p = params(broker, interp, "nowill", how="disconnect")
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe(p["topic"] + "/#", 1)
        lines = ok_run(interp, WILL, p)
        assert "DISCONNECTED" in lines
        assert peer.get(1) == [(p["topic"] + "/alive", b"yes", 1, False)]
        assert peer.get(1, timeout=0.7) == []


# -- persistent session -----------------------------------------------------------------------

PERSISTENT = """
import sys, time
from mote import MQTTClient
got = []
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"], timeout_ms=3000)
c.set_callback(lambda t, m: got.append((t, m, c.msg_qos)))
print("SP1", c.connect(clean_session=False))
print("GRANTED", c.subscribe(PARAMS["topic"].encode() + b"/#", 1))
c.disconnect()
print("AWAY")
sys.stdin.readline()
print("SP2", c.connect(clean_session=False))
t0 = time.time()
while len(got) < PARAMS["n"] and time.time() - t0 < 10:
    c.check_msg()
    time.sleep(0.01)
for t, m, q in got:
    print("GOT", t.decode(), m.decode(), q)
c.disconnect()
c.connect(clean_session=True)  # drop the session on the broker
c.disconnect()
print("DONE")
"""


@scenario.interp_param()
def test_persistent_session_keeps_messages_sent_while_away(interp, broker):
    p = params(broker, interp, "persist", n=4)
    t = p["topic"]
    with scenario.Peer(broker.host, broker.port) as peer:
        with scenario.Process(interp, PERSISTENT, p) as sc:
            sc.expect("AWAY")
            for i in range(4):
                peer.publish(t + "/away", b"while away %d" % i, qos=1)
            sc.write_line("go")
            rc, out = sc.wait(15)
    lines = out.splitlines()
    assert rc == 0, out
    assert lines[:4] == ["SP1 False", "GRANTED 1", "AWAY", "SP2 True"], out
    assert lines_with(lines, "GOT") == ["GOT %s/away while away %d 1" % (t, i) for i in range(4)]
    assert lines[-1] == "DONE"


QUEUED_BEHIND_CONNACK = """
from mote import MQTTClient
got = []
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"], timeout_ms=2000)
c.set_callback(lambda t, m: got.append((t, m)))
try:
    print("SP", c.connect(clean_session=False))
except OSError as e:
    print("CONNECT FAILED", repr(e))
print("GOT", got)
"""


@scenario.interp_param()
def test_connect_returns_when_queued_messages_come_with_the_connack(interp, fake_broker_factory):
    # What a broker with a stored session does: CONNACK and the queued messages at once.
    data = fakebroker.connack(0, session_present=True) + fakebroker.publish(
        b"t/queued", b"while away", qos=1, pid=7
    )
    fb = fake_broker_factory([fakebroker.send(data), fakebroker.expect(fakebroker.PUBACK)])
    p = {"host": "127.0.0.1", "port": fb.port, "cid": "queued-" + interp}
    lines = ok_run(interp, QUEUED_BEHIND_CONNACK, p)
    assert lines == ["SP True", "GOT [(b't/queued', b'while away')]"], lines


# -- keepalive against a broker that stops answering -------------------------------------------

KEEPALIVE_RAISES = """
import time
from mote import MQTTClient
for how in ("check_msg", "wait_msg"):
    c = MQTTClient(PARAMS["cid"] + how, PARAMS["host"], PARAMS["port"], keepalive=1,
                   reconnect=False)
    c.connect()
    t0 = time.time()
    try:
        while time.time() - t0 < 8:
            if how == "check_msg":
                c.check_msg()
                time.sleep(0.02)
            else:
                c.wait_msg()
        print("NO ERROR", how)
    except OSError as e:
        print("RAISED", how, "%.2f" % (time.time() - t0), repr(e))
print("DONE")
"""


def _both_interps(code, make_params, timeout=20):
    """Run code on both interpreters at once (these tests mostly wait); {interp: lines}."""
    procs = {}
    try:
        for interp in scenario.INTERPRETERS:
            if interp == "micropython" and not mpclient.micropython_path():
                continue
            procs[interp] = scenario.Process(interp, code, make_params(interp))
        out = {}
        for interp, sc in procs.items():
            rc, text = sc.wait(timeout)
            assert rc == 0, text
            out[interp] = text.splitlines()
        return out
    finally:
        for sc in procs.values():
            sc.__exit__()


def test_keepalive_silent_broker_raises_oserror_within_two_keepalives(fake_broker_factory):
    fbs = {}

    def mk(interp):
        fbs[interp] = fake_broker_factory(fakebroker.silent_pings(), hold_s=10)
        return {"host": "127.0.0.1", "port": fbs[interp].port, "cid": "ka-" + interp}

    outs = _both_interps(KEEPALIVE_RAISES, mk)
    for interp, lines in outs.items():
        raised = lines_with(lines, "RAISED")
        assert [x.split()[1] for x in raised] == ["check_msg", "wait_msg"], (interp, lines)
        for x in raised:
            assert 0.9 <= float(x.split()[2]) <= 3.5, (interp, x)  # contract: about 2 s
        assert len(fbs[interp].packets(fakebroker.PINGREQ)) >= 2, interp


KEEPALIVE_RECONNECT = """
import sys, time
from mote import MQTTClient
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"], keepalive=1, timeout_ms=1000,
               backoff_ms=100, backoff_max_ms=300)
c.connect()
print("READY")
sys.stdin.readline()  # the link is blackholed now
t0 = time.time()
while c.is_connected() and time.time() - t0 < 8:
    c.check_msg()
    time.sleep(0.02)
print("LOST", not c.is_connected(), "%.2f" % (time.time() - t0), c.stats()["connections_lost"])
sys.stdin.readline()  # healed
t0 = time.time()
while not c.is_connected() and time.time() - t0 < 8:
    c.check_msg()
    time.sleep(0.02)
s = c.stats()
print("BACK", c.is_connected(), s["reconnects"], s["connections_lost"])
c.publish(PARAMS["topic"].encode(), b"after the blackhole", qos=1)
print("PENDING", c.flush(3000))
c.disconnect()
"""


def test_keepalive_blackholed_link_is_detected_and_reconnect_recovers(broker, proxy_factory):
    proxies = {}
    procs = {}
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe("t/kabh/#", 1)
        try:
            for interp in scenario.INTERPRETERS:
                if interp == "micropython" and not mpclient.micropython_path():
                    continue
                proxies[interp] = proxy_factory(broker.port)
                p = {
                    "host": "127.0.0.1",
                    "port": proxies[interp].port,
                    "cid": "kabh-" + interp,
                    "topic": "t/kabh/" + interp,
                }
                procs[interp] = scenario.Process(interp, KEEPALIVE_RECONNECT, p)
            for interp, sc in procs.items():
                sc.expect("READY")
                proxies[interp].blackhole(True)
                sc.write_line("go")
            for interp, sc in procs.items():
                line = sc.expect("LOST", 12).split()
                assert line[1] == "True" and float(line[2]) <= 3.5 and int(line[3]) >= 1, line
                proxies[interp].cut_now()  # the stale connection goes; new ones pass
                proxies[interp].blackhole(False)
                sc.write_line("go")
            for sc in procs.values():
                rc, out = sc.wait(15)
                assert rc == 0, out
                back = lines_with(out.splitlines(), "BACK")[0].split()
                assert back[1] == "True" and int(back[2]) >= 1, out
                assert "PENDING 0" in out
        finally:
            for sc in procs.values():
                sc.__exit__()
        got = sorted(peer.get(len(procs)))
    assert got == sorted(("t/kabh/" + i, b"after the blackhole", 1, False) for i in procs)


# -- receive buffer and outbox limits --------------------------------------------------------

OVERSIZE = """
import time
from mote import MQTTClient
got = []
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"], rx_size=PARAMS["rx"])
def cb(t, m):
    got.append((t, len(m), m == bytes([m[0]]) * len(m) if m else True, c.msg_qos))
c.set_callback(cb)
c.connect()
c.subscribe(PARAMS["topic"].encode() + b"/#", 1)
print("READY")
t0 = time.time()
while len(got) < PARAMS["n"] and time.time() - t0 < 10:
    c.wait_msg()
for g in got:
    print("GOT", g[0].decode(), g[1], g[2], g[3])
s = c.stats()
print("DROPPED", s["oversize_dropped"], "CONNECTED", c.is_connected(),
      "LOST", s["connections_lost"])
c.publish(PARAMS["topic"].encode() + b"/reply", b"still here", qos=1)
print("PENDING", c.flush(5000))
c.disconnect()
"""


def _max_payload(rx, topic, qos):
    # The largest payload whose PUBLISH packet is rx bytes: type byte + length bytes + body.
    for vbi_len in (1, 2, 3, 4):
        body = rx - 1 - vbi_len
        if len(fakebroker.vbi(body)) == vbi_len:
            return body - 2 - len(topic) - (2 if qos else 0)
    raise ValueError(rx)


@scenario.interp_param()
def test_payloads_up_to_rx_size_arrive_whole_and_bigger_ones_are_dropped(interp, broker):
    rx = 300
    p = params(broker, interp, "big", rx=rx, n=4)
    t = p["topic"]
    fit0 = _max_payload(rx, (t + "/fit0").encode(), 0)
    fit1 = _max_payload(rx, (t + "/fit1").encode(), 1)
    with (
        scenario.Peer(broker.host, broker.port) as peer,
        scenario.Process(interp, OVERSIZE, p) as sc,
    ):
        peer.subscribe(t + "/reply", 1)
        sc.expect("READY")
        peer.publish(t + "/fit0", b"a" * fit0, qos=0)
        peer.publish(t + "/fit1", b"b" * fit1, qos=1)
        peer.publish(t + "/over0", b"c" * (fit0 + 1), qos=0)
        peer.publish(t + "/over1", b"d" * 5000, qos=1)
        peer.publish(t + "/small", b"e" * 10, qos=1)
        peer.publish(t + "/empty", b"", qos=0)
        rc, out = sc.wait(15)
        reply = peer.get(1)
    lines = out.splitlines()
    assert rc == 0, out
    assert lines_with(lines, "GOT") == [
        "GOT %s/fit0 %d True 0" % (t, fit0),
        "GOT %s/fit1 %d True 1" % (t, fit1),
        "GOT %s/small 10 True 1" % t,
        "GOT %s/empty 0 True 0" % t,
    ], out
    assert "DROPPED 2 CONNECTED True LOST 0" in lines, out
    assert "PENDING 0" in lines
    assert reply == [(t + "/reply", b"still here", 1, False)]


OUTBOX = """
from mote import MQTTClient
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"], outbox_size=256)
c.connect()
t = PARAMS["topic"].encode()
for q in (1, 2):
    try:
        c.publish(t, b"x" * 300, qos=q)
        print("NO ERROR", q)
    except ValueError as e:
        print("VALUEERROR", q, e)
print("QOS0", c.publish(t, b"y" * 300, qos=0))
print("PID", c.publish(t, b"fits", qos=1))
print("PENDING", c.flush(5000), c.pending(), c.is_connected())
c.disconnect()
"""


@scenario.interp_param()
def test_qos1_publish_larger_than_the_outbox_raises_valueerror(interp, broker):
    p = params(broker, interp, "outbox")
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe(p["topic"], 1)
        lines = ok_run(interp, OUTBOX, p)
        got = peer.get(2)
    assert [x.split()[:2] for x in lines_with(lines, "VALUEERROR")] == [
        ["VALUEERROR", "1"],
        ["VALUEERROR", "2"],
    ], lines
    assert "QOS0 0" in lines and "PID 1" in lines and "PENDING 0 0 True" in lines
    assert got == [(p["topic"], b"y" * 300, 0, False), (p["topic"], b"fits", 1, False)]


# -- TLS ----------------------------------------------------------------------------------------

TLS = """
import sys
from mote import MQTTClient
P = PARAMS
def rd(path):
    with open(path, "rb") as f:
        return f.read()
sp = {}
for k, v in P["ssl_params"].items():
    sp[k] = rd(v) if k == "cadata" else v
port = P[P["port_key"]]
c = MQTTClient(P["cid"], P["host"], port, ssl=True, ssl_params=sp, timeout_ms=5000)
for attempt in range(P.get("attempts", 1)):
    try:
        c.connect()
    except Exception as e:
        print("ERROR", isinstance(e, (OSError, ValueError)), type(e).__name__, repr(e))
        sys.exit(0)
    t = P["topic"].encode()
    c.subscribe(t, 1)
    got = []
    c.set_callback(lambda tp, m: got.append(m))
    c.publish(t, b"over tls", qos=1)
    while not got:
        c.wait_msg()
    print("OK", got)
    c.disconnect()
"""

TLS_CASES = {
    "ca_pem_file": ("tls_port", {"cafile": "ca"}, True),
    "cadata_der": ("tls_port", {"cadata": "ca_der"}, True),
    "wrong_ca": ("tls_port", {"cadata": "other_ca_der"}, False),
    "wrong_host": ("wronghost_port", {"cafile": "ca"}, False),
    "mtls_with_client_cert": (
        "mtls_port",
        {"cafile": "ca", "certfile": "client_cert", "keyfile": "client_key"},
        True,
    ),
    "mtls_without_client_cert": ("mtls_port", {"cafile": "ca"}, False),
}


@scenario.interp_param()
@pytest.mark.parametrize("case", list(TLS_CASES))
def test_tls(interp, case, broker):
    port_key, sp, works = TLS_CASES[case]
    p = params(broker, interp, "tls" + case, port_key=port_key)
    p["ssl_params"] = {k: p[v] for k, v in sp.items()}
    lines = ok_run(interp, TLS, p)
    print(interp, case, lines)  # the error text, for the record (pytest -s)
    if works:
        assert lines == ["OK [b'over tls']"], lines
    else:
        # OSError (CPython's ssl errors are subclasses) or ValueError (mbedTLS's text)
        assert len(lines) == 1 and lines[0].startswith("ERROR True "), lines
    assert not any("WARNING" in x for x in lines)


@scenario.interp_param()
def test_tls_without_a_ca_works_and_warns_once(interp, broker):
    p = params(broker, interp, "tlsnoca", port_key="tls_port", ssl_params={}, attempts=2)
    lines = ok_run(interp, TLS, p)
    assert lines_with(lines, "OK") == ["OK [b'over tls']"] * 2, lines
    warnings = [x for x in lines if "WARNING" in x]
    assert len(warnings) == 1 and "not verified" in warnings[0].lower(), lines


# -- credentials -----------------------------------------------------------------------------

AUTH = """
from mote import MQTTClient, MQTTException
P = PARAMS
for name, user, pw in (("wrong", P["user"], "not-the-password"), ("none", None, None),
                       ("right", P["user"], P["password"])):
    c = MQTTClient(P["cid"], P["host"], P["auth_port"], user=user, password=pw)
    try:
        print(name, "SP", c.connect())
        c.disconnect()
    except MQTTException as e:
        print(name, "REFUSED", type(e.args[0]).__name__, e.args[0])
    except OSError as e:
        print(name, "OSERROR", e)
"""


@scenario.interp_param()
def test_refused_credentials_raise_mqttexception_with_the_return_code(interp, broker):
    lines = ok_run(interp, AUTH, params(broker, interp, "auth"))
    # mosquitto 2 answers a bad password and a missing one alike: 5, not authorized.
    assert lines == ["wrong REFUSED int 5", "none REFUSED int 5", "right SP False"], lines


# -- reads per message -------------------------------------------------------------------

READS = """
from mote import MQTTClient


class Counting:
    # The client's socket, counting its reads.
    def __init__(self, sock):
        self.sock = sock
        self.reads = 0

    def recv_into(self, mv, n):
        self.reads += 1
        return self.sock.recv_into(mv, n)

    def __getattr__(self, name):
        return getattr(self.sock, name)


got = []
c = MQTTClient(PARAMS["cid"], PARAMS["host"], PARAMS["port"])
c.set_callback(lambda t, m: got.append(m))
c.connect()
t = PARAMS["topic"].encode()
c.subscribe(t)
c.sock = Counting(c.sock)
n = 50
for i in range(n):
    c.publish(t, b"m%d" % i)
    while len(got) <= i:
        c.wait_msg()
print("READS", c.sock.reads, "MESSAGES", len(got))
c.disconnect()
"""


def test_a_message_that_wakes_wait_msg_costs_at_most_two_reads(broker):
    # One read that finds nothing, then (after the poll) the one that gets the message: a
    # short read on a plain socket that leaves nothing unhandled ends the round, where a
    # third read would only have said "nothing more" (each read is a system call, on a
    # board a trip through lwIP). Before: 3 reads per message.
    lines = ok_run("cpython", READS, params(broker, "cpython", "reads"))
    words = lines_with(lines, "READS")[0].split()
    reads, messages = int(words[1]), int(words[3])
    assert messages == 50 and reads <= 2 * messages, lines
