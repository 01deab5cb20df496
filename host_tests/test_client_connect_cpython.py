# The connection machine and MQTT's session rules (issue 10), on both interpreters:
# check_msg() never blocks whatever the network does, connect() has one deadline, every
# failure of an attempt counts and backs off, a failed attempt leaves nothing behind,
# subscriptions are renewed only by the client's own reconnect (and a refusal is
# surfaced), a clean session never resumes old flows, callbacks never nest, umqtt's TLS
# keys work, and a message the broker keeps refusing leaves the outbox.
import ast
import time

import fakebroker as fb
import mpclient
import pytest
import scenario

# check_msg() must return within this on the host, whatever the network does (issue 10).
CHECK_MSG_MS = 50


def parse(out):
    res = {}
    for line in out.splitlines():
        key, _, rest = line.partition(" ")
        res.setdefault(key, []).append(rest)
    return res


def params(broker, interp, name, **extra):
    return mpclient.broker_params(
        broker, interp=interp, cid="%s-%s" % (name, interp), topic="t/%s/%s" % (name, interp),
        **extra,
    )  # fmt: skip


def run_ok(interp, code, p, timeout=30):
    rc, out = scenario.run(interp, code, p, timeout)
    assert rc == 0, out
    return parse(out), out


class Interactive:
    """A scenario that prints a line and waits for one on stdin at each step."""

    def __init__(self, interp, code, p):
        self.proc = scenario.spawn(interp, code, p)
        self.lines = []

    def until(self, word, timeout_s=20.0):
        deadline = time.monotonic() + timeout_s
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(word):
                return line.split()
            if time.monotonic() > deadline:
                break
        pytest.fail("no %s line: %s" % (word, "\n".join(self.lines)))

    def go(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout_s=30.0):
        out, _ = self.proc.communicate(timeout=timeout_s)
        self.lines += out.splitlines()
        assert self.proc.returncode == 0, "\n".join(self.lines)
        return parse("\n".join(self.lines))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


# -- check_msg() never blocks --------------------------------------------------------------

OUTAGE = """
import sys
from mote import MQTTClient
from mote.compat import sleep_ms, ticks_diff, ticks_ms

P = PARAMS
sp = {"cafile": P["ca"]} if P["tls"] else {}
c = MQTTClient(P["cid"], "127.0.0.1", P["via"], keepalive=5, timeout_ms=P["timeout_ms"],
               backoff_ms=50, backoff_max_ms=300, ssl=P["tls"] or None, ssl_params=sp)
c.connect()
print("READY")
sys.stdin.readline()  # the test breaks the link, then says go
worst = calls = 0
t0 = ticks_ms()
while ticks_diff(ticks_ms(), t0) < P["watch_ms"]:
    a = ticks_ms()
    c.check_msg()
    d = ticks_diff(ticks_ms(), a)
    if d > worst:
        worst = d
    calls += 1
    sleep_ms(2)
print("WORST", worst, calls, c.stats()["connect_failures"], c.is_connected())
sys.stdin.readline()  # the test heals the link
t0 = ticks_ms()
while not c.is_connected() and ticks_diff(ticks_ms(), t0) < 10000:
    c.check_msg()
    sleep_ms(5)
print("BACK", c.is_connected())
c.publish(P["topic"].encode(), b"after", qos=1)
print("PENDING", c.flush(5000))
c.disconnect()
"""

OUTAGES = {
    # the broker is down: each connection is accepted and closed at once
    "refused": (False, lambda p: p.refuse(True)),
    # TCP is accepted and nothing ever comes back: no CONNACK
    "silent": (False, lambda p: p.blackhole(True)),
    # the same under TLS: the handshake stalls after the ClientHello
    "silent_tls": (True, lambda p: p.blackhole(True)),
}


@scenario.interp_param(scenario.ALL_INTERPRETERS)
@pytest.mark.parametrize("case", sorted(OUTAGES))
def test_check_msg_never_blocks_during_an_outage(interp, case, broker, proxy_factory):
    tls, fault = OUTAGES[case]
    proxy = proxy_factory(broker.tls_port if tls else broker.port)
    p = params(broker, interp, "outage" + case, via=proxy.port, tls=tls, timeout_ms=700,
               watch_ms=2500)  # fmt: skip
    s = Interactive(interp, OUTAGE, p)
    try:
        s.until("READY")
        fault(proxy)
        proxy.cut_now()
        s.go()
        w = s.until("WORST")
        proxy.heal()
        s.go()
        res = s.finish()
    finally:
        s.kill()
    worst, calls, fails, up = int(w[1]), int(w[2]), int(w[3]), w[4]
    assert worst < CHECK_MSG_MS, "check_msg() took %d ms during %s" % (worst, case)
    assert calls > 100, w  # it kept returning: the loop ran
    assert fails >= 2, w  # attempts were made, failed (timed out for silent) and counted
    assert up == "False", w
    assert res["BACK"] == ["True"] and res["PENDING"] == ["0"], res


DEADLINE = """
from mote import MQTTClient
from mote.compat import ticks_diff, ticks_ms

P = PARAMS
sp = {"cafile": P["ca"]} if P["tls"] else {}
c = MQTTClient(P["cid"], "127.0.0.1", P["via"], timeout_ms=P["timeout_ms"],
               ssl=P["tls"] or None, ssl_params=sp)
t0 = ticks_ms()
try:
    c.connect()
    print("CONNECTED")
except OSError as e:
    print("ERR", e.args[0])
print("MS", ticks_diff(ticks_ms(), t0))
print("STATE", c.is_connected(), c.sock is None)
"""


@scenario.interp_param()
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_connect_has_one_deadline_for_the_whole_attempt(interp, tls, broker, proxy_factory):
    proxy = proxy_factory(broker.tls_port if tls else broker.port)
    proxy.blackhole(True)
    p = params(broker, interp, "deadline", via=proxy.port, tls=tls, timeout_ms=800)
    res, out = run_ok(interp, DEADLINE, p)
    import errno

    assert res["ERR"] == [str(errno.ETIMEDOUT)], out
    assert 750 <= int(res["MS"][0]) <= 1500, out
    assert res["STATE"] == ["False True"], out  # no socket, not connected


TLS_TURNS_BAD = """
import sys
from mote import MQTTClient
from mote.compat import sleep_ms, ticks_diff, ticks_ms

P = PARAMS
c = MQTTClient(P["cid"], "127.0.0.1", P["via"], timeout_ms=2000, backoff_ms=50,
               backoff_max_ms=200, ssl=True, ssl_params={"cafile": P["ca"]})
c.connect()
print("READY")
sys.stdin.readline()
with open(P["other_ca_der"], "rb") as f:
    c.ssl_params = {"cadata": f.read()}  # the server's certificate no longer verifies
t0 = ticks_ms()
while ticks_diff(ticks_ms(), t0) < 1500:
    c.check_msg()
    sleep_ms(5)
print("FAILS", c.stats()["connect_failures"], c.is_connected())
c.ssl_params = {"cafile": P["ca"]}
t0 = ticks_ms()
while not c.is_connected() and ticks_diff(ticks_ms(), t0) < 5000:
    c.check_msg()
    sleep_ms(5)
print("BACK", c.is_connected())
"""


@scenario.interp_param()
def test_a_tls_failure_on_reconnect_counts_and_backs_off(interp, broker, proxy_factory):
    proxy = proxy_factory(broker.tls_port)
    s = Interactive(interp, TLS_TURNS_BAD, params(broker, interp, "tlsbad", via=proxy.port))
    try:
        s.until("READY")
        proxy.cut_now()
        s.go()
        res = s.finish()
    finally:
        s.kill()
    fails, up = res["FAILS"][0].split()
    # mbedTLS raises ValueError for a certificate it rejects: never out of check_msg().
    assert int(fails) >= 2 and up == "False", res
    assert int(fails) <= 12, res  # backed off (50..200 ms), not retried in a tight loop
    assert res["BACK"] == ["True"], res


# -- an attempt succeeds whole or leaves nothing -----------------------------------------------

AFTER_CONNACK = """
from mote import MQTTClient

P = PARAMS
c = MQTTClient(b"afterconnack", P["host"], P["port"], timeout_ms=2000, backoff_ms=50,
               backoff_max_ms=200)
print("SP", c.connect())
print("PID", c.publish(b"q/x", b"x", qos=1))
print("PENDING", c.flush(4000))
st = c.stats()
print("COUNTS", st["protocol_errors"], st["reconnects"], st["connect_failures"])
"""


@scenario.interp_param()
def test_a_protocol_error_right_after_connack_is_a_lost_connection(interp, fake_broker_factory):
    # (ack_all() before the CONNACK in every script here: the client may answer the CONNACK
    # before the fake broker's next action runs.)
    fake = fake_broker_factory(
        [[fb.send(fb.connack() + fb.GARBAGE)], [fb.ack_all(), fb.send(fb.connack())]]
    )
    res, out = run_ok(interp, AFTER_CONNACK, {"host": fake.host, "port": fake.port})
    assert res["SP"] == ["False"], out  # connect() returned: the CONNACK was accepted
    assert res["PENDING"] == ["0"], out
    assert res["COUNTS"] == ["1 1 0"], out  # lost once, reconnected, no failed attempt


REFUSED = """
from mote import MQTTClient, MQTTException

P = PARAMS
c = MQTTClient(b"refused", P["host"], P["auth_port"], user=P["user"], password=b"wrong")
try:
    c.connect()
except MQTTException as e:
    print("CODE", e.args[0])
print("STATE", c.is_connected(), c.sock is None)
"""


@scenario.interp_param()
def test_a_refused_connect_leaves_no_socket(interp, broker):
    res, out = run_ok(interp, REFUSED, params(broker, interp, "refused"))
    assert res["CODE"] in (["4"], ["5"]), out
    assert res["STATE"] == ["False True"], out


# -- subscriptions ---------------------------------------------------------------------------

RESUB = """
import sys
from mote import MQTTClient, MQTTException
from mote.compat import sleep_ms, ticks_diff, ticks_ms

P = PARAMS
c = MQTTClient(b"resub", P["host"], P["port"], timeout_ms=2000, backoff_ms=50,
               backoff_max_ms=300, reconnect=P["reconnect"])
c.connect()
print("GRANTED", c.subscribe(b"cmd/#", 1))
if not P["reconnect"]:
    t0 = ticks_ms()
    try:
        while ticks_diff(ticks_ms(), t0) < 3000:
            c.check_msg()
            sleep_ms(5)
    except OSError:
        print("LOST")
    c.reconnect()
t0 = ticks_ms()
try:
    while ticks_diff(ticks_ms(), t0) < 6000 and c.stats()["subscriptions_refused"] < 2:
        c.check_msg()
        sleep_ms(5)
    print("NOERR")
except MQTTException as e:
    print("RAISED", e.args[0])
print("REFUSED", c.stats()["subscriptions_refused"])
"""


# The first connection grants the subscription and is cut; the second refuses its renewal.
REFUSES_ON_RENEWAL = [
    [fb.ack_all(), fb.send(fb.connack()), fb.sleep(0.3), fb.close()],
    [fb.refuse_subs(), fb.ack_all(), fb.send(fb.connack())],
]


@scenario.interp_param()
def test_a_refused_renewal_is_counted_retried_and_printed(interp, fake_broker_factory):
    fake = fake_broker_factory(REFUSES_ON_RENEWAL)
    res, out = run_ok(interp, RESUB, {"host": fake.host, "port": fake.port, "reconnect": True})
    assert res["GRANTED"] == ["1"] and res["NOERR"] == [""], out
    assert int(res["REFUSED"][0]) >= 2, out  # refused, then tried again (every 300 ms)
    assert "mote: subscription refused on renewal: b'cmd/#'" in out, out
    subs = [p for p in fake.sessions[1].received if p.type == fb.SUBSCRIBE]
    assert len(subs) >= 2 and all(p.topics == [("cmd/#", 1)] for p in subs), subs


@scenario.interp_param()
def test_a_refused_renewal_raises_from_check_msg_without_reconnect(interp, fake_broker_factory):
    fake = fake_broker_factory(REFUSES_ON_RENEWAL)
    res, out = run_ok(interp, RESUB, {"host": fake.host, "port": fake.port, "reconnect": False})
    assert res["LOST"] == [""], out
    assert res["RAISED"] == ["128"], out
    assert res["REFUSED"] == ["1"], out


CLEAN_AGAIN = """
from mote import MQTTClient
from mote.compat import sleep_ms, ticks_diff, ticks_ms

P = PARAMS
got = []
c = MQTTClient(P["cid"], P["host"], P["port"])
c.set_callback(lambda t, m: got.append(m))
c.connect()
c.subscribe(P["topic"].encode(), 1)
c.disconnect()
print("SP", c.connect(clean_session=True))
c.publish(P["topic"].encode(), b"to nobody", qos=1)
c.flush(2000)
t0 = ticks_ms()
while ticks_diff(ticks_ms(), t0) < 600:
    c.check_msg()
    sleep_ms(5)
print("GOT", len(got))
c.disconnect()
"""


@scenario.interp_param()
def test_connect_clean_after_disconnect_does_not_renew_old_subscriptions(interp, broker):
    res, out = run_ok(interp, CLEAN_AGAIN, params(broker, interp, "cleanagain"))
    assert res["SP"] == ["False"], out
    assert res["GOT"] == ["0"], out  # umqtt's behaviour: a clean session has no subscription


# -- a clean session never resumes old flows -------------------------------------------------

UNFINISHED = """
from mote import MQTTClient

P = PARAMS
c = MQTTClient(b"unfinished", P["host"], P["port"], timeout_ms=2000, backoff_ms=50,
               backoff_max_ms=200)
c.connect(clean_session=P["clean"])
print("PID", c.publish(b"q/two", b"two", qos=2))
print("PID", c.publish(b"q/one", b"one", qos=1))
print("PENDING", c.flush(4000))
st = c.stats()
print("COUNTS", st["qos2_abandoned"], st["retransmissions"], st["reconnects"])
"""


@scenario.interp_param()
@pytest.mark.parametrize("clean", [True, False], ids=["clean", "persistent"])
def test_unfinished_flows_across_a_reconnect(interp, clean, fake_broker_factory):
    # The first connection takes both PUBLISH packets and answers neither; the second
    # acknowledges everything, with a session only when the client asked for one.
    fake = fake_broker_factory(
        [
            [fb.send(fb.connack()), fb.expect(fb.PUBLISH), fb.expect(fb.PUBLISH), fb.close()],
            [fb.ack_all(), fb.send(fb.connack(session_present=not clean))],
        ]
    )
    res, out = run_ok(interp, UNFINISHED, {"host": fake.host, "port": fake.port, "clean": clean})
    assert res["PENDING"] == ["0"], out
    again = [p for p in fake.sessions[1].received if p.type == fb.PUBLISH]
    if clean:
        # QoS 2 may have been delivered by the first broker session: never again. QoS 1 is
        # published again as a new message (no DUP: a new session has no old ones).
        assert [(p.topic, p.qos, p.dup) for p in again] == [("q/one", 1, False)], again
        assert res["COUNTS"] == ["1 0 1"], out
    else:
        assert [(p.topic, p.qos, p.dup) for p in again] == [("q/two", 2, True), ("q/one", 1, True)]
        assert res["COUNTS"] == ["0 2 1"], out


# -- callbacks never nest ----------------------------------------------------------------------

NESTED = """
from mote import MQTTClient
from mote.compat import sleep_ms, ticks_diff, ticks_ms

P = PARAMS
seen = []
depth = [0]
c = MQTTClient(b"nested", P["host"], P["port"], zero_copy=True, max_inflight=1,
               timeout_ms=1000)


def cb(t, m):
    depth[0] += 1
    before = bytes(m)
    try:
        c.publish(b"out", b"1", qos=1)
        c.publish(b"out", b"2", qos=1)  # the outbox is full: the broker acks nothing
        print("PUBLISHED")
    except OSError as e:
        print("FULL", e.args[0])
    seen.append((before, bytes(m), depth[0]))
    depth[0] -= 1


c.set_callback(cb)
c.connect()
t0 = ticks_ms()
while ticks_diff(ticks_ms(), t0) < 800:
    c.check_msg()
    sleep_ms(5)
for s in seen:
    print("SEEN", s[0].decode(), s[1].decode(), s[2])
"""


@scenario.interp_param()
def test_callbacks_never_nest(interp, fake_broker_factory):
    msgs = fb.publish("in", b"AAAAAAAA") + fb.publish("in", b"CCCCCCCC")
    fake = fake_broker_factory([fb.send(fb.connack()), fb.sleep(0.2), fb.send(msgs)])
    res, out = run_ok(interp, NESTED, {"host": fake.host, "port": fake.port})
    import errno

    # The first callback fills the outbox; the second publish fails at once instead of
    # servicing the socket (which dispatched the next message inside this callback).
    assert res["FULL"][0] == str(errno.ENOBUFS), out
    assert res["SEEN"] == ["AAAAAAAA AAAAAAAA 1", "CCCCCCCC CCCCCCCC 1"], out


# -- umqtt's TLS keys, PEM bundles, jitter -----------------------------------------------------

UMQTT_TLS = """
from mote import MQTTClient

P = PARAMS
def read(name):
    with open(P[name], "rb") as f:
        return f.read()
sp = {"cadata": read(P["ca_key"]), "cert": read(P["cert_key"]), "key": read(P["key_key"])}
c = MQTTClient(P["cid"], P["host"], P["mtls_port"], ssl=True, ssl_params=sp)
c.connect()
c.subscribe(P["topic"].encode(), 1)
c.publish(P["topic"].encode(), b"mutual", qos=1)
got = []
c.set_callback(lambda t, m: got.append(m))
while not got:
    c.wait_msg()
print("GOT", got[0].decode())
c.disconnect()
try:
    MQTTClient(b"x", "h", ssl=True, ssl_params={"certfiel": "typo.pem"})
except ValueError as e:
    print("UNKNOWN", e.args[1])
"""


@scenario.interp_param()
def test_umqtt_ssl_params_cert_and_key_data_give_mutual_tls(interp, broker):
    der = interp != "cpython"  # what umqtt programs on MicroPython pass: DER data
    p = params(broker, interp, "umqtttls", cert_key="client_cert_der" if der else "client_cert",
               key_key="client_key_der" if der else "client_key",
               ca_key="ca_der" if der else "ca")  # fmt: skip
    res, out = run_ok(interp, UMQTT_TLS, p)
    assert res["GOT"] == ["mutual"], out
    assert res["UNKNOWN"] == ["certfiel"], out


BUNDLE = """
from mote import MQTTClient

P = PARAMS
with open(P["bundle"], "rb") as f:
    bundle = f.read()
c = MQTTClient(P["cid"], P["host"], P["tls_port"], ssl=True, ssl_params={"cadata": bundle})
c.connect()
print("CONNECTED", c.is_connected())
c.disconnect()
"""


@scenario.interp_param()
def test_a_pem_bundle_keeps_every_ca(interp, broker, tmp_path):
    # The CA that signed the broker's certificate comes second in the bundle.
    bundle = tmp_path / "bundle.pem"
    with open(broker.certs.other_ca_cert, "rb") as a, open(broker.certs.ca_cert, "rb") as b:
        bundle.write_bytes(a.read() + b.read())
    res, out = run_ok(interp, BUNDLE, params(broker, interp, "bundle", bundle=str(bundle)))
    assert res["CONNECTED"] == ["True"], out


JITTER = """
from mote import MQTTClient, link

a = MQTTClient(b"a", "127.0.0.1")
b = MQTTClient(b"b", "127.0.0.1")
print("A", [link.delay_ms(a) for _ in range(6)])
print("B", [link.delay_ms(b) for _ in range(6)])
"""


@scenario.interp_param()
def test_two_clients_built_together_back_off_differently(interp):
    res, out = run_ok(interp, JITTER, {})
    a, b = ast.literal_eval(res["A"][0]), ast.literal_eval(res["B"][0])
    assert a != b, out  # seeded from os.urandom, not from the clock at construction
    assert all(250 <= x <= 500 for x in a + b), out  # 50..100 % of the first step


# -- a message the broker keeps refusing --------------------------------------------------------

POISON = """
from mote import MQTTClient

P = PARAMS
c = MQTTClient(P["cid"], P["host"], P["port"], timeout_ms=2000, backoff_ms=20,
               backoff_max_ms=100)
c.connect(clean_session=False)
print("PID", c.publish(P["topic"].encode(), b"x" * 400, qos=1))  # over max_packet_size
for i in range(3):
    print("PID", c.publish(P["topic"].encode(), b"small %d" % i, qos=1))
print("PENDING", c.flush(8000))
st = c.stats()
print("COUNTS", st["poison_dropped"], st["connections_lost"])
c.disconnect()
"""


@scenario.interp_param()
def test_a_message_the_broker_refuses_leaves_the_outbox(interp, broker_factory):
    b = broker_factory(tls=False, extra_conf=["max_packet_size 300"])
    peer = scenario.Peer(b.host, b.port)
    try:
        topic = "t/poison/%s" % interp
        peer.subscribe(topic, qos=1)
        res, out = run_ok(interp, POISON, mpclient.broker_params(b, cid="poison-" + interp,
                                                                 topic=topic))  # fmt: skip
        got = sorted(m[1] for m in peer.get(3))
    finally:
        peer.close()
    assert res["PENDING"] == ["0"], out
    assert res["COUNTS"] == ["1 3"], out  # three closes right after resending it, then dropped
    assert "mote: the broker closes the connection on message 1 - dropped" in out, out
    assert got == [b"small 0", b"small 1", b"small 2"], got


# -- a subclass's connect() runs on every reconnect (umqtt.robust's LWT example) ---------------

LWT_SUBCLASS = """
import sys
from mote import MQTTClient
from mote.compat import sleep_ms, ticks_diff, ticks_ms

P = PARAMS
STATUS = P["topic"].encode()


class Client(MQTTClient):
    def connect(self, clean_session=True):
        self.set_last_will(STATUS, b"Offline", retain=True)
        try:
            return super().connect(clean_session)
        finally:
            self.publish(STATUS, b"Online", retain=True)


c = Client(P["cid"], P["host"], P["via"], keepalive=5, backoff_ms=50, backoff_max_ms=200)
c.connect()
print("READY")
sys.stdin.readline()
t0 = ticks_ms()
while ticks_diff(ticks_ms(), t0) < 2000:
    c.check_msg()
    sleep_ms(5)
print("RECONNECTS", c.stats()["reconnects"])
c.disconnect()
"""


@scenario.interp_param()
def test_a_subclass_connect_runs_on_every_reconnect(interp, broker, proxy_factory):
    proxy = proxy_factory(broker.port)
    p = params(broker, interp, "lwtsub", via=proxy.port)
    peer = scenario.Peer(broker.host, broker.port)
    s = Interactive(interp, LWT_SUBCLASS, p)
    try:
        peer.subscribe(p["topic"], qos=1)
        s.until("READY")
        assert [m[1] for m in peer.get(1)] == [b"Online"]
        proxy.cut_now()  # no DISCONNECT: the broker publishes the will
        s.go()
        res = s.finish()
        statuses = [m[1] for m in peer.get(2)]
        peer.publish(p["topic"], b"", qos=1, retain=True)  # clear the retained status
    finally:
        s.kill()
        peer.close()
    assert statuses == [b"Offline", b"Online"], statuses
    assert res["RECONNECTS"] == ["1"], res


# -- deferred QoS 2 messages are fetched at once ----------------------------------------------

DEFERRED = """
from mote import MQTTClient
from mote.compat import sleep_ms, ticks_diff, ticks_ms

P = PARAMS
got = set()
c = MQTTClient(P["cid"], P["host"], P["port"], qos2_in=4)
c.set_callback(lambda t, m: got.add(bytes(m)))
c.connect(clean_session=False)
c.subscribe(P["topic"].encode(), 2)
print("READY")
import sys
sys.stdin.readline()
t0 = ticks_ms()
while len(got) < P["n"] and ticks_diff(ticks_ms(), t0) < 8000:
    c.check_msg()
    sleep_ms(2)
st = c.stats()
print("GOT", len(got), ticks_diff(ticks_ms(), t0), st["qos2_deferred"] > 0, st["connect_failures"])
c.disconnect()
"""


@scenario.interp_param()
def test_deferred_qos2_messages_are_fetched_without_backoff(interp, broker):
    p = params(broker, interp, "deferred", n=30)
    s = Interactive(interp, DEFERRED, p)
    peer = scenario.Peer(broker.host, broker.port)
    try:
        s.until("READY")
        for i in range(30):
            peer.publish(p["topic"], b"m%d" % i, qos=2)
        s.go()
        res = s.finish()
    finally:
        s.kill()
        peer.close()
    n, ms, deferred, fails = res["GOT"][0].split()
    assert n == "30" and deferred == "True" and fails == "0", res
    assert int(ms) < 4000, res  # reconnects at once: no 0.5..8 s backoff between rounds


# -- the name lookup -----------------------------------------------------------------------------

LOOKUPS = """
import sys
from mote import MQTTClient, compat
from mote.compat import sleep_ms, ticks_diff, ticks_ms

P = PARAMS
calls = [0]
resolve = compat.resolve


def counting(host, port):
    calls[0] += 1
    return resolve(host, port)


compat.resolve = counting
c = MQTTClient(P["cid"], "localhost", P["via"], timeout_ms=1000, backoff_ms=50,
               backoff_max_ms=200)
c.connect()
print("READY", calls[0])
sys.stdin.readline()  # the test cuts the link (the broker stays up)
t0 = ticks_ms()
while not c.is_connected() or ticks_diff(ticks_ms(), t0) < 300:
    c.check_msg()
    sleep_ms(5)
print("CUT", calls[0], c.stats()["reconnects"])
sys.stdin.readline()  # the test closes the port
t0 = ticks_ms()
while ticks_diff(ticks_ms(), t0) < 1500:
    c.check_msg()
    sleep_ms(5)
print("REFUSED", calls[0], c.stats()["connect_failures"])
c.disconnect()
"""


@scenario.interp_param()
def test_names_are_looked_up_once_per_attempt_and_kept_while_they_work(
    interp, broker, proxy_factory
):
    proxy = proxy_factory(broker.port)
    s = Interactive(interp, LOOKUPS, params(broker, interp, "lookups", via=proxy.port))
    try:
        ready = s.until("READY")
        proxy.cut_now()
        s.go()
        cut = s.until("CUT")
        proxy.close()  # nothing listens there any more: TCP connects are refused
        s.go()
        res = s.finish()
    finally:
        s.kill()
    assert ready[1] == "1", ready
    assert cut[1:] == ["1", "1"], cut  # reconnected to the address it had: no lookup
    lookups, fails = (int(x) for x in res["REFUSED"][0].split())
    # The first attempt after the loss uses the kept address; its refused TCP connect drops
    # it, so each later attempt, one backoff apart, looks the name up once: the first
    # connect's lookup plus one per failed attempt but the first.
    assert fails >= 3 and lookups == 1 + (fails - 1), res


# -- no stall behind TCP's small-packet rules ------------------------------------------------

STALLS = """
from mote import MQTTClient
from mote.compat import ticks_diff, ticks_ms

P = PARAMS
c = MQTTClient(P["cid"], P["host"], P["port"])
c.connect()
t = P["topic"].encode()


def timed(fn):
    out = []
    for _ in range(7):
        t0 = ticks_ms()
        fn()
        out.append(ticks_diff(ticks_ms(), t0))
    return sorted(out)[3]  # the median


def mixed():  # a reading at QoS 0, then an alarm at QoS 1, then wait for it
    c.publish(t, b"reading")
    c.publish(t, b"reading")
    c.publish(t, b"alarm", qos=1)
    c.flush(2000)


def burst():  # eight QoS 1 messages in flight, then wait for all
    for i in range(8):
        c.publish(t, b"m%d" % i, qos=1)
    c.flush(2000)


print("MIXED", timed(mixed))
print("BURST", timed(burst))
c.disconnect()
"""


@scenario.interp_param()
def test_no_delayed_ack_stall_after_qos0_or_a_burst(interp, broker_factory):
    # mosquitto's default keeps Nagle's algorithm on its side: its second and later
    # acknowledgements wait for the client's ACK, which Linux delays by about 40 ms. And a
    # QoS 1 message written while Nagle holds a QoS 0 tail on the client's side waits too.
    b = broker_factory(tls=False, tcp_nodelay=False)
    p = mpclient.broker_params(b, cid="stall-" + interp, topic="t/stall/" + interp)
    res, out = run_ok(interp, STALLS, p)
    assert int(res["MIXED"][0]) < 20, out
    assert int(res["BURST"][0]) < 20, out


# -- disconnect() lets the broker close first --------------------------------------------------

LINGER = """
from mote import MQTTClient
from mote.compat import ticks_diff, ticks_ms

P = PARAMS
c = MQTTClient(b"linger", P["host"], P["port"])
c.connect()
t0 = ticks_ms()
c.disconnect()
print("MS", ticks_diff(ticks_ms(), t0))
"""


@scenario.interp_param()
@pytest.mark.parametrize("close_after_s", [0.1, None], ids=["closes", "never_closes"])
def test_disconnect_waits_briefly_for_the_broker_to_close(interp, close_after_s):
    # The broker closes the connection once it has handled DISCONNECT (MQTT-3.14.4).
    # Returning before that lets a connect() that follows overtake the DISCONNECT on a
    # broker that handles connections in parallel (the Paho test broker then takes the
    # client id over and publishes the will), and closing with unread input sends RST.
    import socket
    import threading

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen = {}

    def broker():
        conn, _ = srv.accept()
        conn.recv(1024)  # CONNECT
        conn.sendall(fb.connack())
        seen["disconnect"] = conn.recv(16)
        if close_after_s is not None:
            time.sleep(close_after_s)
            conn.close()
        else:
            time.sleep(1.0)

    t = threading.Thread(target=broker, daemon=True)
    t.start()
    try:
        res, out = run_ok(interp, LINGER, {"host": "127.0.0.1", "port": srv.getsockname()[1]})
        t.join(5)
    finally:
        srv.close()
    assert seen["disconnect"] == b"\xe0\x00", seen
    ms = int(res["MS"][0])
    if close_after_s is not None:
        assert 90 <= ms < 250, out  # returned once the broker closed
    else:
        assert 240 <= ms < 600, out  # a broker that never closes costs at most ~250 ms


UNLINK = """
import sys
from mote import MQTTClient
from mote.compat import sleep_ms

c = MQTTClient(b"unlink-" + PARAMS["interp"].encode(), PARAMS["host"], PARAMS["port"],
               backoff_ms=20)
print("BEFORE", "mote.link" in sys.modules)
c.connect()
print("CONNECTED", "mote.link" in sys.modules)
print("GRANTED", c.subscribe(b"unlink/x", 1))
print("SUBSCRIBED", "mote.link" in sys.modules)
c.sock.close()  # the link breaks under the client
c.check_msg()
print("DOWN", c.is_connected(), "mote.link" in sys.modules)
for _ in range(200):
    c.check_msg()
    if c.is_connected():
        break
    sleep_ms(10)
print("UP", c.is_connected(), c.reconnects, "mote.link" in sys.modules)
c.publish(b"unlink/x", b"again", qos=1)
print("PENDING", c.flush(3000))
c.disconnect()
print("DONE", "mote.link" in sys.modules)
"""


@scenario.interp_param(["micropython", "micropython32"])
def test_the_connection_machine_leaves_the_heap_once_connected(interp, broker):
    # mote.link (connect, reconnect, subscribe, disconnect) is imported while needed and
    # forgotten once the client is connected: its code does not stay in a board's heap.
    res, out = run_ok(interp, UNLINK, {"host": "127.0.0.1", "port": broker.port, "interp": interp})
    assert res["BEFORE"] == ["False"] and res["CONNECTED"] == ["False"], out
    assert res["GRANTED"] == ["1"] and res["SUBSCRIBED"] == ["False"], out
    assert res["DOWN"] == ["False True"], out  # loaded to handle the loss and reconnect
    assert res["UP"] == ["True 1 False"], out
    assert res["PENDING"] == ["0"] and res["DONE"] == ["False"], out
