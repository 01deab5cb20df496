# mote.aio, the asyncio client, against mosquitto on CPython's asyncio and MicroPython's
# (both VMs where memory is the question): the client contract as asyncio sees it, the
# memory contract (heap_lock), the soak's two fault runs (random link cuts, a blackholed
# link) with test_client_soak_cpython.py's harness and its rules, an event loop that is
# never blocked, bad input, and a disconnect that leaves nothing running.
import random
import socket
import threading
import time

import fakebroker as fb
import scenario
from test_client_soak_cpython import N_BLACKHOLE, N_CUTS, _soak

ROUND_TRIP = """
import asyncio
from mote.aio import MQTTClient

P = PARAMS
T = b"aio/" + P["interp"].encode()


async def main():
    c = MQTTClient(b"aio-rt-" + P["interp"].encode(), P["host"], P["port"], keepalive=5)
    print("SP", await c.connect())
    print("UP", c.up.is_set(), c.is_connected())
    print("GRANTED", await c.subscribe(T + b"/#", 2))
    for q in (0, 1, 2):
        await c.publish(T + b"/x", b"m%d" % q, qos=q)
        print("PID", c.pid)
    print("PENDING", await c.flush(5000))
    got = []
    async for topic, msg, retained in c.messages():
        got.append("GOT %s %s %s" % (topic.decode(), msg.decode(), retained))
        if len(got) == 3:
            break
    for g in sorted(got):
        print(g)
    await c.unsubscribe(T + b"/#")
    await c.publish(T + b"/x", b"after")
    await asyncio.sleep_ms(200) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(0.2)
    print("QUEUED", len(c._q))
    print("STATS", c.stats()["published"], c.stats()["received"])
    await c.disconnect()
    print("DOWN", c.down.is_set(), c.is_connected())
    print("DONE")


asyncio.run(main())
"""


@scenario.interp_param(scenario.ALL_INTERPRETERS)
def test_round_trip_subscribe_publish_messages_flush_unsubscribe(interp, broker):
    params = {"host": "127.0.0.1", "port": broker.port, "interp": interp}
    rc, out = scenario.run(interp, ROUND_TRIP, params, timeout=30)
    assert rc == 0, out
    lines = out.splitlines()
    assert "SP False" in lines and "UP True True" in lines and "GRANTED 2" in lines, out
    assert [x for x in lines if x.startswith("PID")] == ["PID 0", "PID 2", "PID 3"], out
    assert "PENDING 0" in lines, out
    got = [x for x in lines if x.startswith("GOT")]
    assert got == ["GOT aio/%s/x m%d False" % (interp, q) for q in range(3)], out
    assert "QUEUED 0" in lines, out  # unsubscribed: "after" is not delivered
    assert "STATS 4 3" in lines, out
    assert "DOWN True False" in lines and lines[-1] == "DONE", out


MEMORY = """
import asyncio, gc, micropython
from mote.aio import MQTTClient

P = PARAMS


async def main():
    c = MQTTClient(b"aio-mem-" + P["interp"].encode(), P["host"], P["port"], keepalive=60)
    await c.connect()
    t = bytearray(b"aio/mem")
    m = b"x" * 40
    for q in (0, 1, 2):  # warm up every path first
        for i in range(20):
            await c.publish(t, m, qos=q)
            while c.pending():  # (inline: calling a coroutine function allocates)
                await asyncio.sleep_ms(0)
    for q in (0, 1, 2):
        # A paced stream: each message acknowledged before the next (the background task
        # keeps spinning between them, so it never parks).
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        for i in range(200):
            await c.publish(t, m, qos=q)
            while c.pending():
                await asyncio.sleep_ms(0)
        b = gc.mem_alloc()
        gc.enable()
        print("BYTES", q, b - a)
        micropython.heap_lock()
        try:
            for i in range(100):
                await c.publish(t, m, qos=q)
                while c.pending():
                    await asyncio.sleep_ms(0)
            r = "ok"
        except MemoryError:
            r = "MemoryError"
        micropython.heap_unlock()
        print("LOCKED", q, r, c.pending())
    await asyncio.sleep_ms(100)  # parked now
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    await asyncio.sleep_ms(3000)
    b = gc.mem_alloc()
    gc.enable()
    print("IDLE", b - a)
    await c.disconnect()
    print("DONE")


asyncio.run(main())
"""


@scenario.interp_param(["micropython", "micropython32"])
def test_publish_and_acks_allocate_nothing_and_idle_allocates_nothing(interp, broker):
    params = {"host": "127.0.0.1", "port": broker.port, "interp": interp}
    rc, out = scenario.run(interp, MEMORY, params, timeout=60)
    assert rc == 0, out
    lines = out.splitlines()
    for q in (0, 1, 2):
        assert "BYTES %d 0" % q in lines, out
        assert "LOCKED %d ok 0" % q in lines, out
    assert "IDLE 0" in lines, out
    assert lines[-1] == "DONE", out


AIO_SOAK = """
import asyncio
from binascii import hexlify
from mote.aio import MQTTClient
from mote.compat import ticks_diff, ticks_ms

P = PARAMS
N = P["n"]
UP1 = P["prefix"] + b"/up/1"
UP2 = P["prefix"] + b"/up/2"
DOWN = P["prefix"] + b"/down/"
T0 = ticks_ms()
rx = (bytearray(N), bytearray(N))
done = [0]
retries = [0]
peak = [0]


def late():
    return ticks_diff(ticks_ms(), T0) > P["deadline_ms"]


def sleep_ms(ms):
    return asyncio.sleep_ms(ms) if hasattr(asyncio, "sleep_ms") else asyncio.sleep(ms / 1000)


def on_msg(c, topic, msg):
    occ = sum(1 for x in c._s._in2 if x)
    if occ > peak[0]:
        peak[0] = occ
    k = 0 if topic.endswith(b"/1") else 1
    i = int(msg)
    if k:
        print("Q2", i, c._s.pkt.pid)  # for the broker_resends() check
    if not rx[k][i]:
        done[0] += 1
        if not done[0] % 10:
            print("RXN", done[0])
    if rx[k][i] < 255:
        rx[k][i] += 1


async def pub(c, topic, msg, qos):
    while True:
        try:
            await c.publish(topic, msg, qos=qos)
            return
        except OSError as e:  # ENOBUFS: the outbox stayed full for timeout_ms (an outage)
            retries[0] += 1
            print("PUBRETRY", repr(e))
            if late():
                raise


async def main():
    MQTTClient.DEBUG = True
    c = MQTTClient(P["client_id"], P["host"], P["port"], keepalive=P["keepalive"],
                   timeout_ms=P["timeout_ms"], backoff_ms=20, backoff_max_ms=400,
                   qos2_in=P["qos2_in"])
    c.set_callback(lambda topic, msg: on_msg(c, topic, msg))  # (it knows the packet id)
    await c.connect(clean_session=False)
    print("GRANTED", await c.subscribe(DOWN + b"#", 2))
    print("READY")
    i = 0
    while i < N and not late():
        m = b"%d" % i
        await pub(c, UP1, m, 1)
        await pub(c, UP2, m, 2)
        i += 1
    print("PUBLISHED", i, ticks_diff(ticks_ms(), T0))
    while (c.pending() or done[0] < 2 * N) and not late():
        await sleep_ms(5)
    print("DRAINED", c.pending(), done[0], ticks_diff(ticks_ms(), T0))
    await sleep_ms(500)
    print("RX1", hexlify(rx[0]).decode())
    print("RX2", hexlify(rx[1]).decode())
    print("RETRIES", retries[0])
    print("PEAK", peak[0])
    print("STATS", repr(c.stats()))
    await c.disconnect()
    print("DONE", ticks_diff(ticks_ms(), T0))


asyncio.run(main())
"""


@scenario.interp_param()
def test_soak_random_cuts_lose_nothing_and_qos2_is_exactly_once(interp, broker, proxy):
    seed = random.randrange(1 << 30)
    n = N_CUTS[interp]
    cuts, lost, _, _ = _soak(interp, broker, proxy, n, 3, "cuts", seed, AIO_SOAK, "aio soak")
    assert cuts >= 4 * n // 200, "too few cuts to mean anything: %d" % cuts
    assert len(lost) >= cuts // 2, lost


@scenario.interp_param()
def test_soak_blackholed_link_is_detected_by_keepalive_and_loses_nothing(interp, broker, proxy):
    n = N_BLACKHOLE[interp]
    res = _soak(interp, broker, proxy, n, 1, "blackhole", 0, AIO_SOAK, "aio soak")
    cuts, lost, keepalive_lost, _ = res
    assert keepalive_lost >= 1, lost
    assert cuts == 0


NEVER_BLOCKED = """
import asyncio
from mote.aio import MQTTClient
from mote.compat import ticks_diff, ticks_ms

P = PARAMS
gap = [0]
stop = [False]


def sleep_ms(ms):
    return asyncio.sleep_ms(ms) if hasattr(asyncio, "sleep_ms") else asyncio.sleep(ms / 1000)


async def ticker():
    t = ticks_ms()
    while not stop[0]:
        await sleep_ms(5)
        now = ticks_ms()
        if ticks_diff(now, t) > gap[0]:
            gap[0] = ticks_diff(now, t)
        t = now


async def main():
    # Constructed first: a constructor loads code (compiled here from .py), which holds
    # the loop up once; what is measured is connecting, keepalive and reconnecting.
    c = MQTTClient(b"aio-stall", P["host"], P["stall_port"], timeout_ms=1500)
    tick = asyncio.create_task(ticker())
    await sleep_ms(20)
    # A server that accepts TCP and never answers CONNECT: connect() waits its timeout
    # while the other task keeps running.
    t0 = ticks_ms()
    try:
        await c.connect()
        print("CONNECTED?")
    except OSError as e:
        print("STALLED", ticks_diff(ticks_ms(), t0) >= 1400, repr(e))
    print("GAP1", gap[0])
    # Connected through the proxy, which then blackholes the link: keepalive notices,
    # and reconnects go on in the background, all without blocking the loop.
    c = MQTTClient(b"aio-bh", P["host"], P["proxy_port"], keepalive=1, timeout_ms=800,
                   backoff_ms=50, backoff_max_ms=300)
    gap[0] = 0
    await c.connect()
    c.up.clear()
    print("READY")
    while not c.down.is_set():
        await sleep_ms(10)
    print("DOWN")
    t0 = ticks_ms()
    while not c.up.is_set() and ticks_diff(ticks_ms(), t0) < 8000:
        await c.publish(b"aio/bh", b"queued", qos=1)  # queued in the outbox meanwhile
        await sleep_ms(200)
    print("UP", c.up.is_set(), c.pending() <= 40)
    print("FLUSHED", await c.flush(5000))
    await c.disconnect()
    stop[0] = True
    await tick
    print("GAP2", gap[0])
    print("DONE")


asyncio.run(main())
"""


def _stall_server():
    """A TCP server that accepts and then never sends anything (no CONNACK)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    held = []
    stop = threading.Event()

    def run():
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(ls.accept()[0])
            except OSError:
                pass
        for s in held:
            s.close()
        ls.close()

    threading.Thread(target=run, daemon=True).start()
    return ls.getsockname()[1], stop


@scenario.interp_param()
def test_event_loop_is_never_blocked_by_connect_outage_or_reconnect(interp, broker, proxy):
    port, stop = _stall_server()
    params = {"host": "127.0.0.1", "stall_port": port, "proxy_port": proxy.port}
    proc = scenario.spawn(interp, NEVER_BLOCKED, params)
    out = []
    try:
        for line in proc.stdout:
            out.append(line.rstrip("\n"))
            if out[-1] == "READY":
                proxy.blackhole()
                proxy.stall()
            elif out[-1] == "DOWN":
                time.sleep(1.0)
                proxy.resume()
                proxy.heal()
        proc.wait(30)
    finally:
        stop.set()
        proxy.heal()
        if proc.poll() is None:
            proc.kill()
    text = "\n".join(out)
    assert proc.returncode == 0, text
    assert any(x.startswith("STALLED True") for x in out), text
    res = {x.split(" ", 1)[0]: x.split(" ", 1)[1] for x in out if " " in x}
    # The other task's 5 ms sleeps never stretched to 50 ms: nothing blocked the loop.
    assert int(res["GAP1"]) < 50 and int(res["GAP2"]) < 50, text
    assert res["UP"] == "True True" and res["FLUSHED"] == "0", text
    assert out[-1] == "DONE", text


BAD_INPUT = """
import asyncio
from mote.aio import MQTTClient

P = PARAMS


def sleep_ms(ms):
    return asyncio.sleep_ms(ms) if hasattr(asyncio, "sleep_ms") else asyncio.sleep(ms / 1000)


async def main():
    MQTTClient.DEBUG = True
    c = MQTTClient(b"aio-bad", P["host"], P["port"], backoff_ms=50, backoff_max_ms=200)
    await c.connect()
    c.up.clear()
    while not c.down.is_set():
        await sleep_ms(10)
    print("DOWN")
    while not c.up.is_set():
        await sleep_ms(10)
    print("UP AGAIN")
    await c.publish(b"a/b", b"after", qos=1)
    print("PENDING", await c.flush(3000))
    await c.disconnect()
    print("DONE")


asyncio.run(main())
"""


@scenario.interp_param()
def test_bad_input_closes_the_connection_with_a_clear_error_and_reconnects(
    interp, fake_broker_factory
):
    bad = fb.packet(0, 0, b"")  # packet type 0 is reserved (MQTT 3.1.1 section 2.2.1)
    fake = fake_broker_factory(
        [
            [fb.send(fb.connack()), fb.sleep(0.2), fb.send(bad)],
            [fb.ack_all(), fb.send(fb.connack())],
        ]
    )
    rc, out = scenario.run(interp, BAD_INPUT, {"host": fake.host, "port": fake.port}, timeout=30)
    assert rc == 0, out
    lines = out.splitlines()
    assert "DOWN" in lines and "UP AGAIN" in lines and "PENDING 0" in lines, out
    assert any(x.startswith("mote: connection lost:") and "ProtocolError" in x for x in lines), out
    assert lines[-1] == "DONE", out


NOTHING_LEFT = """
import asyncio
from mote.aio import MQTTClient

P = PARAMS
MP = hasattr(asyncio, "sleep_ms")


def running():
    # What the event loop still has besides this task: MicroPython's task and I/O queues,
    # CPython's task set.
    if MP:
        from asyncio import core
        return (core._task_queue.peek() is not None) + len(core._io_queue.map)
    return len(asyncio.all_tasks()) - 1


async def main():
    c = MQTTClient(b"aio-left", P["host"], P["port"], keepalive=2)
    await c.connect()
    await c.subscribe(b"aio/left", 1)
    await c.publish(b"aio/left", b"x", qos=1)
    await (asyncio.sleep_ms(300) if MP else asyncio.sleep(0.3))
    print("BEFORE", running() > 0)
    await c.disconnect()
    await (asyncio.sleep_ms(50) if MP else asyncio.sleep(0.05))
    print("AFTER", running())
    print("DONE")


asyncio.run(main())
"""


@scenario.interp_param()
def test_disconnect_leaves_nothing_running(interp, broker):
    rc, out = scenario.run(interp, NOTHING_LEFT, {"host": "127.0.0.1", "port": broker.port})
    assert rc == 0, out
    lines = out.splitlines()
    assert "BEFORE True" in lines and "AFTER 0" in lines and lines[-1] == "DONE", out


CALLBACKS = """
import asyncio
from mote.aio import MQTTClient

P = PARAMS
T = b"aio/cb/" + P["interp"].encode()


def sleep_ms(ms):
    return asyncio.sleep_ms(ms) if hasattr(asyncio, "sleep_ms") else asyncio.sleep(ms / 1000)


got = []


def cb(topic, msg):
    if msg == b"boom":
        raise ValueError("the application's own bug")
    got.append(msg)


async def main():
    c = MQTTClient(b"aio-cb-" + P["interp"].encode(), P["host"], P["port"])
    c.set_callback(cb)
    await c.connect()
    await c.subscribe(T, 1)
    for m in (b"boom", b"one", b"two"):
        await c.publish(T, m, qos=1)
    for _ in range(200):
        if len(got) == 2:
            break
        await sleep_ms(10)
    print("GOT", got, c.is_connected())
    await c.disconnect()
    # messages() ends after disconnect(), once what it holds is read
    d = MQTTClient(b"aio-it-" + P["interp"].encode(), P["host"], P["port"])
    await d.connect()
    await d.subscribe(T, 1)
    await d.publish(T, b"last", qos=1)
    seen = []
    async for topic, msg, retained in d.messages():
        seen.append(msg)
        await d.disconnect()
    print("SEEN", seen)
    print("DONE")


asyncio.run(main())
"""


@scenario.interp_param()
def test_a_raising_callback_keeps_the_connection_and_messages_ends_on_disconnect(interp, broker):
    params = {"host": "127.0.0.1", "port": broker.port, "interp": interp}
    rc, out = scenario.run(interp, CALLBACKS, params, timeout=30)
    assert rc == 0, out
    lines = out.splitlines()
    assert any("the message callback raised" in x and "ValueError" in x for x in lines), out
    assert "GOT [b'one', b'two'] True" in lines, out
    assert "SEEN [b'last']" in lines and lines[-1] == "DONE", out


WAKE_AFTER_READY = """
import asyncio
import socket
from mote.compat import ticks_diff, ticks_ms
from mote.compat_aio import Waiter, sleep_ms

P = PARAMS
CONNECT = b"\\x10\\x0d\\x00\\x04MQTT\\x04\\x02\\x00\\x3c\\x00\\x01w"
PINGREQ = b"\\xc0\\x00"
w = Waiter()
runs = [0]


async def parked(sock):
    await w.park(sock, False, 5000)
    w.done()
    runs[0] += 1


async def waker():
    w.wake()


def spin(ms):
    t = ticks_ms()
    while ticks_diff(ticks_ms(), t) < ms:
        pass


def drain(sock, n):
    got = b""
    t = ticks_ms()
    while len(got) < n and ticks_diff(ticks_ms(), t) < 2000:
        try:
            got += sock.recv(n - len(got)) or b""
        except OSError:
            pass
    return got


async def main():
    s = socket.socket()
    s.connect(socket.getaddrinfo(P["host"], P["port"])[0][-1])
    s.send(CONNECT)
    print("CONNACK", drain(s, 4) == b"\\x20\\x02\\x00\\x00")
    s.setblocking(False)
    for i in range(10):
        asyncio.create_task(parked(s))
        await sleep_ms(0)  # the task parks on the socket
        asyncio.create_task(waker())  # queued now: ahead of the socket's wake-up below
        s.send(PINGREQ)
        spin(5)  # the PINGRESP arrives: the next poll wakes the parked task
        await sleep_ms(0)  # then the waker runs first and wakes it once more
        await sleep_ms(20)
        if drain(s, 2) != b"\\xd0\\x00" or runs[0] != i + 1:
            print("ROUND", i, "runs", runs[0])
            break
    print("RUNS", runs[0])
    s.close()
    print("DONE")


asyncio.run(main())
"""


@scenario.interp_param(scenario.ALL_INTERPRETERS)
def test_a_wake_after_the_socket_woke_the_task_runs_it_once(interp, broker):
    # Waiter.wake() (the ticker at a deadline, or a publish from another task) on a task its
    # socket has already woken but that has not run yet must not queue it a second time: a
    # task twice in MicroPython's task queue corrupts its pairing heap (the VM crashed with
    # SIGSEGV in task_queue_pop, about once in 10 runs of the aio soak).
    rc, out = scenario.run(interp, WAKE_AFTER_READY, {"host": "127.0.0.1", "port": broker.port})
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == "CONNACK True" and "RUNS 10" in lines and lines[-1] == "DONE", out
