# Failover (issue 3): a list of brokers tried in order, on the first connect and on every
# reconnect, on both interpreters. Two FaultProxy "brokers" in front of one mosquitto.
import scenario
from broker import free_port

FAILOVER = """
from mote import MQTTClient
from mote.compat import sleep_ms, ticks_diff, ticks_ms

P = PARAMS
servers = [("127.0.0.1", p) for p in P["ports"]]
c = MQTTClient(b"failover-" + P["interp"].encode(), servers, keepalive=2, timeout_ms=2000,
               backoff_ms=20, backoff_max_ms=200)
c.connect()
print("FIRST", c.stats()["server"])
c.publish(b"fo/" + P["interp"].encode(), b"one", qos=1)
print("PENDING", c.flush(3000))
print("READY")
import sys
sys.stdin.readline()  # the test makes the first broker unreachable, then says go
t0 = ticks_ms()
while ticks_diff(ticks_ms(), t0) < 8000:
    c.check_msg()
    if c.is_connected() and c.stats()["server"] != P["first"]:
        break
    sleep_ms(10)
print("NOW", c.stats()["server"], c.stats()["reconnects"])
c.publish(b"fo/" + P["interp"].encode(), b"two", qos=1)
print("PENDING", c.flush(3000))
c.disconnect()
print("DONE")
"""


@scenario.interp_param()
def test_first_broker_down_at_connect_then_lost_later_fails_over(interp, broker, proxy_factory):
    dead = free_port()  # nothing listens here: the first attempt is refused
    a = proxy_factory(broker.port)
    b = proxy_factory(broker.port)
    params = {
        "interp": interp,
        "ports": [dead, a.port, b.port],
        "first": "127.0.0.1:%d" % a.port,
    }
    proc = scenario.spawn(interp, FAILOVER, params)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "READY":
                break
        assert "FIRST 127.0.0.1:%d" % a.port in lines, lines  # skipped the dead one
        assert lines.count("PENDING 0") == 1, lines
        a.refuse(True)  # broker "a" goes away: connections are closed at once
        a.cut_now()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = out.splitlines()
    assert rest[-1] == "DONE", out
    now = [x for x in rest if x.startswith("NOW")][0].split()
    assert now[1] == "127.0.0.1:%d" % b.port, out  # the next one that answers
    assert int(now[2]) >= 1, out
    assert "PENDING 0" in rest, out
