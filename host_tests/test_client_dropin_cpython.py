# Drop-in (issue 3 item 8): small programs written the way umqtt.simple / umqtt.robust
# programs are written run with only their import line changed to `from mote import
# MQTTClient`, on both interpreters, against the test broker with a paho-mqtt peer.
# The programs are ours; their settings come from PARAMS where a real one has constants.
import time

import pytest
import scenario

SETTINGS = """
SERVER = PARAMS["host"]
PORT = PARAMS["port"]
CLIENT_ID = PARAMS["cid"]
TOPIC = PARAMS["topic"].encode()
"""

PUBLISH_LOOP = (
    """import time
from umqtt.simple import MQTTClient
"""
    + SETTINGS
    + """

def main():
    c = MQTTClient(CLIENT_ID, SERVER, PORT)
    c.connect()
    print("Connected to", SERVER)
    for i in range(5):
        c.publish(TOPIC, b"reading %d" % i)
        time.sleep(0.02)
    c.publish(TOPIC + b"/temp", str(21.5))
    c.publish(TOPIC + b"/state", b"ok", retain=False, qos=1)
    c.disconnect()
    print("done")


if __name__ == "__main__":
    main()
"""
)

SUBSCRIBE_WAIT = (
    """from umqtt.simple import MQTTClient
"""
    + SETTINGS
    + """
running = [True]


def sub_cb(topic, msg):
    print((topic, msg))
    if msg == b"quit":
        running[0] = False


def main(server=SERVER):
    c = MQTTClient(CLIENT_ID, server, PORT)
    c.set_callback(sub_cb)
    c.connect()
    c.subscribe(TOPIC)
    print("Connected to %s, subscribed to %s topic" % (server, TOPIC))
    try:
        while running[0]:
            c.wait_msg()
    finally:
        c.disconnect()


if __name__ == "__main__":
    main()
"""
)

POLLING = (
    """import time
from umqtt.simple import MQTTClient
"""
    + SETTINGS
    + """
state = {"run": True, "led": "off"}


def on_message(topic, msg):
    if msg == b"quit":
        state["run"] = False
    else:
        state["led"] = msg.decode()
        print("led is now", state["led"])


c = MQTTClient(CLIENT_ID, SERVER, PORT, keepalive=30)
c.set_callback(on_message)
c.connect()
c.subscribe(TOPIC + b"/led")
print("polling")
n = 0
while state["run"]:
    c.check_msg()
    if n % 10 == 0:
        c.publish(TOPIC + b"/uptime", str(n))
    n += 1
    time.sleep(0.01)
c.publish(TOPIC + b"/uptime", b"bye")
c.disconnect()
"""
)

LAST_WILL = (
    """from umqtt.simple import MQTTClient
"""
    + SETTINGS
    + """
STATUS = TOPIC + b"/status"

c = MQTTClient(CLIENT_ID, SERVER, PORT, keepalive=60)
c.set_last_will(STATUS, b"offline", retain=True)
c.connect()
c.publish(STATUS, b"online", retain=True)
print("online")
raise RuntimeError("sensor failed")  # dies without disconnect(): the broker sends the will
"""
)

ROBUST_SESSION = (
    """from umqtt.robust import MQTTClient
"""
    + SETTINGS
    + """
running = [True]


def sub_cb(topic, msg):
    print((topic, msg))
    if msg == b"quit":
        running[0] = False


c = MQTTClient(CLIENT_ID, SERVER, PORT)
c.DEBUG = True
c.set_callback(sub_cb)
if not c.connect(clean_session=False):
    print("New session being set up")
    c.subscribe(TOPIC, 1)
print("listening")
while running[0]:
    c.wait_msg()
c.disconnect()
"""
)

ROBUST_RECONNECT = (
    """import time
from umqtt.robust import MQTTClient
"""
    + SETTINGS
    + """

c = MQTTClient(CLIENT_ID, SERVER, PORT)
c.connect()
for cycle in range(3):
    c.publish(TOPIC, b"cycle %d" % cycle)
    c.disconnect()  # radio off for a while
    time.sleep(0.05)
    c.reconnect()
    print("reconnected", cycle)
c.publish(TOPIC, b"last")
c.disconnect()
"""
)


def dropin(program):
    """The program with its umqtt import replaced by mote's: the only line that changes."""
    lines = program.splitlines()
    out = ["from mote import MQTTClient" if x.startswith("from umqtt.") else x for x in lines]
    assert sum(a != b for a, b in zip(lines, out, strict=True)) == 1
    return "\n".join(out) + "\n"


def params(broker, interp, name, port=None):
    return {
        "host": broker.host,
        "port": port or broker.port,
        "cid": "%s-%s" % (name, interp),
        "topic": "drop/%s/%s" % (name, interp),
    }


@scenario.interp_param()
def test_publish_loop(interp, broker):
    p = params(broker, interp, "publoop")
    t = p["topic"]
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe(t + "/#", 1)
        rc, out = scenario.run(interp, dropin(PUBLISH_LOOP), p, 20)
        got = peer.get(7)
    assert rc == 0 and out.splitlines() == ["Connected to 127.0.0.1", "done"], out
    assert got == [(t, b"reading %d" % i, 0, False) for i in range(5)] + [
        (t + "/temp", b"21.5", 0, False),
        (t + "/state", b"ok", 1, False),
    ]


@scenario.interp_param()
def test_subscribe_and_wait_msg_loop(interp, broker):
    p = params(broker, interp, "waitmsg")
    t = p["topic"]
    with scenario.Peer(broker.host, broker.port) as peer:
        with scenario.Process(interp, dropin(SUBSCRIBE_WAIT), p) as sc:
            sc.expect("subscribed to")
            for m in (b"hello", b"\x00binary\xff", b"quit"):
                peer.publish(t, m)
            rc, out = sc.wait(15)
    assert rc == 0, out
    assert out.splitlines()[1:] == [
        str((t.encode(), m)) for m in (b"hello", b"\x00binary\xff", b"quit")
    ], out


@scenario.interp_param()
def test_check_msg_polling_loop(interp, broker):
    p = params(broker, interp, "polling")
    t = p["topic"]
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe(t + "/uptime", 0)
        with scenario.Process(interp, dropin(POLLING), p) as sc:
            sc.expect("polling")
            peer.publish(t + "/led", b"on")
            sc.expect("led is now on")
            peer.publish(t + "/led", b"toggle")
            sc.expect("led is now toggle")
            peer.publish(t + "/led", b"quit")
            rc, out = sc.wait(15)
        time.sleep(0.1)
        got = peer.get(100, timeout=0.2)
    assert rc == 0, out
    payloads = [m[1] for m in got]
    assert payloads[0] == b"0" and payloads[-1] == b"bye", payloads
    assert [int(x) for x in payloads[:-1]] == list(range(0, 10 * len(payloads) - 10, 10))


@scenario.interp_param()
def test_last_will_on_a_crash(interp, broker):
    p = params(broker, interp, "lwt")
    status = p["topic"] + "/status"
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe(status, 0)
        rc, out = scenario.run(interp, dropin(LAST_WILL), p, 20)
        got = peer.get(2)
        with scenario.Peer(broker.host, broker.port) as late:
            late.subscribe(status, 0)
            kept = late.get(1)
        peer.publish(status, b"", retain=True)
    assert rc != 0 and "online" in out and "sensor failed" in out, out
    assert got == [(status, b"online", 0, False), (status, b"offline", 0, False)]
    assert kept == [(status, b"offline", 0, True)]


@scenario.interp_param()
def test_robust_persistent_session_program_survives_a_cut_and_a_restart(
    interp, broker, proxy_factory
):
    proxy = proxy_factory(broker.port)
    p = params(broker, interp, "robust", port=proxy.port)
    t = p["topic"]
    prog = dropin(ROBUST_SESSION)
    with scenario.Peer(broker.host, broker.port) as peer:
        with scenario.Process(interp, prog, p) as sc:
            sc.expect("New session being set up")
            sc.expect("listening")
            peer.publish(t, b"first", qos=1)
            sc.expect("first")
            time.sleep(0.2)  # the PUBACK follows the callback: let it out before the cut
            proxy.cut_now()
            assert proxy.wait_connections(2, 10), sc.text()
            time.sleep(0.3)  # CONNACK done before the next message is queued
            peer.publish(t, b"after the cut", qos=1)
            sc.expect("after the cut")
            peer.publish(t, b"quit", qos=1)
            rc, out1 = sc.wait(15)
        assert rc == 0, out1
        with scenario.Process(interp, prog, p) as sc:
            sc.expect("listening")
            peer.publish(t, b"second run", qos=1)
            peer.publish(t, b"quit", qos=1)
            rc, out2 = sc.wait(15)
        assert rc == 0, out2
        # drop the broker's session
        with scenario.Peer(broker.host, broker.port, client_id=p["cid"], clean_session=True):
            pass
    msgs1 = [x for x in out1.splitlines() if x.startswith("(")]
    assert msgs1 == [str((t.encode(), m)) for m in (b"first", b"after the cut", b"quit")], out1
    assert "New session being set up" not in out2, out2
    msgs2 = [x for x in out2.splitlines() if x.startswith("(")]
    assert msgs2 == [str((t.encode(), m)) for m in (b"second run", b"quit")], out2


@scenario.interp_param()
def test_robust_reconnect_method(interp, broker):
    p = params(broker, interp, "reconn")
    t = p["topic"]
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe(t, 1)
        rc, out = scenario.run(interp, dropin(ROBUST_RECONNECT), p, 20)
        got = peer.get(4)
    assert rc == 0, out
    assert out.splitlines() == ["reconnected %d" % i for i in range(3)], out
    assert [m[1] for m in got] == [b"cycle 0", b"cycle 1", b"cycle 2", b"last"]


@pytest.mark.parametrize(
    "program", [PUBLISH_LOOP, SUBSCRIBE_WAIT, POLLING, LAST_WILL, ROBUST_SESSION, ROBUST_RECONNECT]
)
def test_programs_import_umqtt(program):
    assert ("from umqtt.simple import MQTTClient" in program) != (
        "from umqtt.robust import MQTTClient" in program
    )
