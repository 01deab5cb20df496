# The client against the real broker on both interpreters: the basic round trip.
import scenario

ROUND_TRIP = """
from mote import MQTTClient
got = []
c = MQTTClient(b"rt-" + PARAMS["interp"].encode(), PARAMS["host"], PARAMS["port"], keepalive=5)
c.set_callback(lambda t, m: got.append((t, m)))
print("SP", c.connect())
print("GRANTED", c.subscribe(b"rt/" + PARAMS["interp"].encode() + b"/#", 2))
for q in (0, 1, 2):
    print("PID", c.publish(b"rt/" + PARAMS["interp"].encode() + b"/x", b"m%d" % q, qos=q))
print("PENDING", c.flush(5000))
n = 0
while len(got) < 3 and n < 100:
    c.check_msg()
    import time
    time.sleep(0.02)
    n += 1
for t, m in got:
    print("GOT", t.decode(), m.decode())
c.disconnect()
print("DONE")
"""


@scenario.interp_param()
def test_publish_subscribe_round_trip_qos_0_1_2(interp, broker):
    params = {"host": "127.0.0.1", "port": broker.port, "interp": interp}
    rc, out = scenario.run(interp, ROUND_TRIP, params, timeout=30)
    assert rc == 0, out
    lines = out.splitlines()
    assert "SP False" in lines and "GRANTED 2" in lines
    assert [x for x in lines if x.startswith("PID")] == ["PID 0", "PID 2", "PID 3"]
    assert "PENDING 0" in lines
    got = sorted(x for x in lines if x.startswith("GOT"))
    assert got == ["GOT rt/%s/x m%d" % (interp, q) for q in range(3)]
    assert lines[-1] == "DONE"


def test_nodelay_adapts_by_default_and_can_be_fixed(broker):
    import socket

    from mote import MQTTClient

    def nodelay(c):
        return c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0

    c = MQTTClient(b"nodelay-auto", "127.0.0.1", broker.port)
    c.connect()
    try:
        assert nodelay(c)  # CONNECT and its answer: at once
        for i in range(5):
            c.publish(b"nd/x", b"burst %d" % i)
        assert not nodelay(c)  # a QoS 0 burst, nothing awaited: TCP may coalesce it
        assert c.publish(b"nd/x", b"y", qos=1) > 0
        assert nodelay(c)  # an answered flow leaves at once
        assert c.flush(3000) == 0
    finally:
        c.disconnect()
    for fixed in (True, False):
        c = MQTTClient(b"nodelay-%d" % fixed, "127.0.0.1", broker.port, nodelay=fixed)
        c.connect()
        try:
            assert nodelay(c) == fixed
            for i in range(5):
                c.publish(b"nd/x", b"burst %d" % i)
            assert c.publish(b"nd/x", b"y", qos=1) > 0 and c.flush(3000) == 0
            assert nodelay(c) == fixed
        finally:
            c.disconnect()
