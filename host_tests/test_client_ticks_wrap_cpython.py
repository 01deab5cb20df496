# The client across the ticks wrap, against the real mosquitto: on the 32-bit VM
# (../shared/micropython32) time.ticks_ms() wraps at 2**30 as on an ESP32 after 12.4 days
# of uptime, and MICROPY_TICKS_LEAD_MS=N starts it N ms before the wrap, so the wrap falls
# in the middle of each scenario. Keepalive (PINGREQ after K s of silence, a dead link
# detected), reconnect backoff (a broker that goes away and comes back) and flush(timeout_ms)
# must behave as they do at any other time: on time, not at once and not 12 days late.
# Every scenario checks that the wrap really happened during it (ticks after < before).
import os
import re
import time

import mpclient
import scenario

import support

VM = "micropython32"
PERIOD = 1 << 30  # ticks_ms() period on the 32-bit VM (and on an ESP32)

# Opens every scenario. T0 is the first ticks_ms() of the process, the one the lead is
# counted from; now() is ms since then (ticks_diff: right across the wrap); wall_ms() is a
# clock the lead does not touch.
PRELUDE = """
import sys, time
from time import ticks_diff, ticks_ms
T0 = ticks_ms()
print("T0", T0, ticks_diff(0, T0))

def now():
    return ticks_diff(ticks_ms(), T0)

def wall_ms():
    return time.time_ns() // 1000000

from mote import MQTTClient
P = PARAMS
"""


def lead_env(lead_ms):
    return {"MICROPY_TICKS_LEAD_MS": str(lead_ms)}


def field(line, i):
    return int(line.split()[i])


def check_t0(lines, lead_ms):
    """T0 is lead_ms (minus start-up) before the wrap; returns T0."""
    t0 = [x for x in lines if x.startswith("T0 ")]
    assert t0, lines
    t0_ticks, to_wrap = field(t0[0], 1), field(t0[0], 2)
    assert lead_ms - 200 <= to_wrap <= lead_ms, t0[0]  # the VM honours the lead
    assert t0_ticks == PERIOD - to_wrap, t0[0]
    return t0_ticks


def assert_wrapped(t0_ticks, later_ticks, what):
    # ticks_ms() counts up from T0; a smaller value later means it passed 2**30 -> 0.
    assert 0 <= later_ticks < t0_ticks, "%s: no wrap (T0 %d, then %d)" % (
        what,
        t0_ticks,
        later_ticks,
    )


class LogTail:
    """New lines of mosquitto's log (flushed per line), each with the host's monotonic
    time at which it was first seen: poll() often for a usable timestamp."""

    def __init__(self, broker):
        self._f = open(broker.log_path, errors="replace")
        self._f.seek(0, os.SEEK_END)
        self._part = ""
        self.lines = []  # (monotonic s, line)

    def poll(self):
        data = self._f.read()
        if data:
            t = time.monotonic()
            data = self._part + data
            *done, self._part = data.split("\n")
            self.lines.extend((t, x) for x in done)

    def times(self, pattern):
        rx = re.compile(pattern)
        return [t for t, x in self.lines if rx.search(x)]

    def close(self):
        self._f.close()


def need_vm():
    reason = mpclient.missing_reason(VM)
    if reason:
        support.missing_tool(reason)  # a skip; under CI=true a failure


# -- keepalive: PINGREQ after K s of silence, across the wrap -------------------------------

KEEPALIVE = (
    PRELUDE
    + """
c = MQTTClient(P["cid"], P["host"], P["port"], keepalive=P["k"])
c.connect()
print("CONNECTED", now(), ticks_ms())
while now() < P["run_ms"]:
    c.check_msg()
    time.sleep_ms(20)
s = c.stats()
print("END", now(), ticks_ms(), c.is_connected(), s["connections_lost"], s["ping_rtt_ms"])
c.disconnect()
"""
)


def test_keepalive_pings_every_k_seconds_across_the_wrap_and_the_broker_keeps_the_client(
    broker,
):
    need_vm()
    k_s, lead, run_ms = 2, 3000, 7500  # pings at about +2 s (before the wrap), +4 s, +6 s
    cid = "wrap-ka"
    log = LogTail(broker)
    p = {"host": broker.host, "port": broker.port, "cid": cid, "k": k_s, "run_ms": run_ms}
    try:
        with scenario.Process(VM, KEEPALIVE, p, env=lead_env(lead)) as sc:
            sc.expect("CONNECTED")
            t_conn = time.monotonic()
            deadline = t_conn + run_ms / 1000 + 5
            while sc.proc.poll() is None and time.monotonic() < deadline:
                log.poll()
                time.sleep(0.01)
            rc, out = sc.wait(5)
        log.poll()
    finally:
        log.close()
    assert rc == 0, out
    lines = out.splitlines()
    t0 = check_t0(lines, lead)
    end = [x for x in lines if x.startswith("END")][0].split()
    assert_wrapped(t0, int(end[2]), "keepalive run")
    assert end[3] == "True" and end[4] == "0", ("client lost the connection", out)
    assert int(end[5]) >= 0, ("no PINGRESP was ever handled", out)
    pings = log.times(r"Received PINGREQ from %s$" % cid)
    # From CONNECTED: one PINGREQ each K s (7.5 s: 3 of them), none sooner, none missed.
    assert len(pings) == 3, (pings, out)
    gaps = [b - a for a, b in zip([t_conn] + pings[:-1], pings, strict=True)]
    assert all(k_s - 0.5 <= g <= k_s + 0.8 for g in gaps), (gaps, out)
    assert not log.times(r"Client %s has exceeded timeout" % cid), out


# -- keepalive: a dead link is detected across the wrap --------------------------------------

DEAD_LINK = (
    PRELUDE
    + """
c = MQTTClient(P["cid"], P["host"], P["port"], keepalive=P["k"], reconnect=False)
c.connect()
t_conn = now()
print("READY", t_conn, ticks_ms())
sys.stdin.readline()  # the link is frozen now
w0 = wall_ms()
try:
    while now() < 12000:
        c.check_msg()
        time.sleep_ms(20)
    print("NOT DETECTED", now())
except OSError as e:
    print("LOST", now() - t_conn, wall_ms() - w0, ticks_ms(), e.args[0], c.is_connected())
    print("ERROR", repr(e))
"""
)


def test_keepalive_detects_a_dead_link_within_two_keepalives_across_the_wrap(
    broker, proxy_factory
):
    need_vm()
    k_s, lead = 2, 2500  # PINGREQ at about +2 s (before the wrap), declared dead at +4 s
    proxy = proxy_factory(broker.port)
    p = {"host": "127.0.0.1", "port": proxy.port, "cid": "wrap-dead", "k": k_s}
    with scenario.Process(VM, DEAD_LINK, p, env=lead_env(lead)) as sc:
        sc.expect("READY")
        proxy.stall()  # nothing passes and nothing is closed: a dead link, not a closed one
        t_go = time.monotonic()
        sc.write_line("go")
        lost = sc.expect("LOST", 12).split()
        t_lost = time.monotonic()
        rc, out = sc.wait(5)
    lines = out.splitlines()
    t0 = check_t0(lines, lead)
    ready = [x for x in lines if x.startswith("READY")][0]
    assert_wrapped(t0, int(lost[3]), "dead-link run")
    assert int(ready.split()[2]) > t0  # connected before the wrap
    # Silence since CONNACK: PINGREQ after K s, no PINGRESP for K s more: dead at 2K.
    since_connack_ms, wall_ms_ = int(lost[1]), int(lost[2])
    assert 2000 * k_s - 50 <= since_connack_ms <= 2000 * k_s + 700, out
    assert 2000 * k_s - 400 <= wall_ms_ <= 2000 * k_s + 700, out
    assert 2 * k_s - 0.5 <= t_lost - t_go <= 2 * k_s + 1.0, (t_lost - t_go, out)
    assert lost[4] == "110" and lost[5] == "False", out  # ETIMEDOUT, and closed
    assert "keepalive" in out, out


# -- reconnect backoff: the broker goes away before the wrap and comes back after it --------

RECONNECT = (
    PRELUDE
    + """
c = MQTTClient(P["cid"], P["host"], P["port"], backoff_ms=P["backoff"],
               backoff_max_ms=P["backoff_max"], timeout_ms=2000)
c.connect()
print("READY", now(), ticks_ms())
was = True
while now() < 15000:
    c.check_msg()
    up = c.is_connected()
    if up != was:
        s = c.stats()
        print("BACK" if up else "LOST", now(), ticks_ms(), s["connect_failures"],
              s["reconnects"], s["connections_lost"])
        was = up
        if up:
            break
    time.sleep_ms(10)
sys.stdin.readline()  # a subscriber is there
print("PID", c.publish(P["topic"].encode(), b"after the outage", qos=1))
print("PENDING", c.flush(3000))
c.disconnect()
print("DONE", ticks_ms())
"""
)


def test_reconnect_backoff_across_the_wrap_retries_boundedly_and_reconnects_on_time(
    broker_factory,
):
    need_vm()
    lead, backoff, backoff_max = 3000, 200, 800
    b = broker_factory(tls=False)
    p = {
        "host": b.host,
        "port": b.port,
        "cid": "wrap-rc",
        "topic": "t/wrap/rc",
        "backoff": backoff,
        "backoff_max": backoff_max,
    }
    with scenario.Process(VM, RECONNECT, p, env=lead_env(lead)) as sc:
        ready = sc.expect("READY").split()
        t_ready = time.monotonic()
        b.stop()  # connections closed, then refused
        lost = sc.expect("LOST", 5).split()
        t_lost = time.monotonic()
        # Down until well after the wrap (T0 + lead): the retry deadlines span it.
        time.sleep(max(0.0, t_ready + (lead + 300 - int(ready[1])) / 1000 - time.monotonic()))
        b.start()
        t_up = time.monotonic()
        back = sc.expect("BACK", 5).split()
        t_back = time.monotonic()
        with scenario.Peer(b.host, b.port) as peer:
            peer.subscribe("t/wrap/rc", 1)
            sc.write_line("go")
            rc, out = sc.wait(10)
            got = peer.get(1)
    assert rc == 0, out
    lines = out.splitlines()
    t0 = check_t0(lines, lead)
    assert int(lost[2]) > t0, out  # the broker went away before the wrap
    assert_wrapped(t0, int(back[2]), "reconnect run")
    # Back within one longest backoff step of the broker's return (not 12 days later).
    assert t_back - t_up <= backoff_max / 1000 + 0.5, (t_back - t_up, out)
    # The client's own count of the outage agrees with the host's (ticks_diff across it).
    down_ms = int(back[1]) - int(lost[1])
    assert abs(down_ms / 1000 - (t_back - t_lost)) <= 0.5, (down_ms, t_back - t_lost, out)
    # Retries while down: one at once, then after 50..100 % of 400, 800, 800, ... ms, so
    # 200..400 ms, then 400..800 ms apart (plus a loop pass). Fewer means retrying stalled
    # at the wrap; more means the backoff was skipped.
    fails = int(back[3])
    lo = down_ms // (backoff_max + 100)
    hi = 2 + down_ms // (2 * backoff)
    assert lo <= fails <= hi, (fails, lo, hi, out)
    assert back[4:] == ["1", "1"], out  # one reconnect, one loss
    assert "PENDING 0" in out and got == [("t/wrap/rc", b"after the outage", 1, False)], (
        got,
        out,
    )


# -- flush(timeout_ms) across the wrap ---------------------------------------------------------

FLUSH = (
    PRELUDE
    + """
c = MQTTClient(P["cid"], P["host"], P["port"])
c.connect()
print("READY", now(), ticks_ms())
sys.stdin.readline()  # no PUBACK can come now
print("PID", c.publish(P["topic"].encode(), b"held", qos=1))
t1 = ticks_ms()
w1 = wall_ms()
n = c.flush(P["timeout"])
t2 = ticks_ms()
print("FLUSH1", n, ticks_diff(t2, t1), wall_ms() - w1, t1, t2)
sys.stdin.readline()  # the link works again
t3 = ticks_ms()
n = c.flush(5000)
print("FLUSH2", n, ticks_diff(ticks_ms(), t3))
c.disconnect()
"""
)


def test_flush_timeout_runs_out_on_time_across_the_wrap(broker, proxy_factory):
    need_vm()
    lead, timeout_ms = 1500, 2000  # flush from about T0 + 50 ms to T0 + 2050 ms
    proxy = proxy_factory(broker.port)
    p = {
        "host": "127.0.0.1",
        "port": proxy.port,
        "cid": "wrap-flush",
        "topic": "t/wrap/flush",
        "timeout": timeout_ms,
    }
    with scenario.Peer(broker.host, broker.port) as peer:
        peer.subscribe("t/wrap/flush", 1)
        with scenario.Process(VM, FLUSH, p, env=lead_env(lead)) as sc:
            sc.expect("READY")
            proxy.stall()
            t_go = time.monotonic()
            sc.write_line("go")
            f1 = sc.expect("FLUSH1", 10).split()
            t_f1 = time.monotonic()
            proxy.resume()
            sc.write_line("go")
            f2 = sc.expect("FLUSH2", 10).split()
            rc, out = sc.wait(5)
        got = peer.get(1)
    assert rc == 0, out
    t0 = check_t0(out.splitlines(), lead)
    n1, ticks_ms_, wall_ms_, t1, t2 = (int(x) for x in f1[1:])
    assert t1 > t0, out
    assert_wrapped(t1, t2, "flush")  # the wrap fell inside flush()
    assert n1 == 1, out  # timed out with the message still pending
    assert timeout_ms <= ticks_ms_ <= timeout_ms + 300, out
    assert timeout_ms - 300 <= wall_ms_ <= timeout_ms + 300, out
    assert timeout_ms / 1000 - 0.1 <= t_f1 - t_go <= timeout_ms / 1000 + 0.8, (t_f1 - t_go, out)
    # Once the PUBACK can come, flush() returns as soon as it does, not at its timeout.
    assert int(f2[1]) == 0 and int(f2[2]) < 1000, out
    assert got == [("t/wrap/flush", b"held", 1, False)], (got, out)
