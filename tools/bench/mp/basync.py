# Benchmark scenarios for the asyncio clients, mqtt_as and mote.aio, run on the MicroPython
# unix port, one scenario per process: micropython -m basync '<json parameters>'. Same
# scenarios and output as bsync.py. mqtt_as needs the `network` and `machine` stand-ins from
# stubs/ on the module path. asyncio is imported lazily so that the RAM scenario counts it as
# part of each client's cost.
#
# mote.aio's loops (cfg): `await c.publish()` returns once written, so a QoS 1/2 stream ends
# with `await c.flush()` inside the timed interval; "each": after every publish the task waits
# for its acknowledgement (`while c.pending(): await asyncio.sleep_ms(0)`), which is what
# mqtt_as's `await publish()` does; "msgs": received messages come from
# `async for ... in c.messages()` instead of the callback.
import gc
import sys
from time import ticks_us

import benchlib
from benchlib import HOST, PAYLOAD, TOPIC, args, elapsed_us, mark, percentile, ready, result

AIO = "mote.aio"
FLUSH_TIMEOUT_MS = 10000


class _NoCollect:
    # mqtt_as calls gc.collect() once a second; allocation counts need the heap left alone.
    def collect(self):
        pass

    def mem_alloc(self):
        return gc.mem_alloc()

    def mem_free(self):
        return gc.mem_free()


class Counter(benchlib.Counter):
    # mqtt_as calls back with a third argument (mote.aio with two), and a waiting task may
    # need waking.
    def __init__(self):
        super().__init__()
        self.event = None

    def cb(self, topic, msg, retained=False):
        self.count(msg)
        if self.event is not None:
            self.event.set()


def make_client(cfg, cb=None, suffix=""):
    cid = cfg["client_id"] + suffix
    if cfg["client"] == AIO:
        from mote.aio import MQTTClient

        kw = {}
        if "max_inflight" in cfg:
            kw["max_inflight"] = cfg["max_inflight"]
        c = MQTTClient(cid, HOST, cfg["port"], keepalive=60, **kw)
        if cb is not None and not cfg.get("msgs"):
            c.set_callback(cb)
        return c
    import mqtt_as

    conf = dict(mqtt_as.config)
    conf["server"] = HOST
    conf["port"] = cfg["port"]
    conf["client_id"] = cid
    conf["keepalive"] = 60
    conf["queue_len"] = 0  # callback interface, the lighter of the two
    if cb is not None:
        conf["subs_cb"] = cb
    return mqtt_as.MQTTClient(conf)


async def new_client(cfg, cb=None, suffix=""):
    c = make_client(cfg, cb, suffix)
    if cfg["client"] == AIO:
        await c.connect()
    else:
        await c.connect(quick=True)
    return c


async def settle(c, cfg):
    """mote.aio: wait until every QoS 1/2 message is acknowledged; mqtt_as's publish already
    waits. True when nothing is left unacknowledged."""
    if cfg["client"] == AIO:
        return await c.flush(FLUSH_TIMEOUT_MS) == 0
    return True


async def close(c):
    try:
        await c.disconnect()
    except OSError:
        pass


async def next_message(c, k):
    # mote.aio's messages(): one step of `async for topic, msg, retained in c.messages()`.
    topic, msg, retained = await c.__anext__()
    k.cb(topic, msg, retained)


async def sc_pub(cfg):
    import asyncio

    qos = cfg["qos"]
    n_max = cfg["n"]
    cap_us = cfg["cap_ms"] * 1000
    aio = cfg["client"] == AIO
    each = aio and qos and cfg.get("each")  # mote.aio: wait for each acknowledgement
    c = await new_client(cfg)
    for _ in range(cfg.get("warmup", 20) if qos == 0 or aio else 2):
        await c.publish(TOPIC, PAYLOAD, False, qos)
    ok = await settle(c, cfg)
    gc.collect()
    tasks = cfg.get("tasks", 1)
    count = [0]
    stop = [False]
    mark(cfg)
    t0 = ticks_us()

    async def worker():
        while count[0] < n_max and not stop[0]:
            count[0] += 1
            await c.publish(TOPIC, PAYLOAD, False, qos)
            if elapsed_us(t0) > cap_us:
                stop[0] = True

    if aio and tasks == 1:
        # The loop a mote.aio user writes (the time cap checked every 4 messages, as in
        # bsync.py); a stream ends with flush() inside the timed interval.
        i = 0
        while i < n_max:
            await c.publish(TOPIC, PAYLOAD, False, qos)
            if each:
                while c.pending():
                    await asyncio.sleep_ms(0)
            i += 1
            if not i & 3 and elapsed_us(t0) > cap_us:
                break
        count[0] = i
    elif tasks == 1:
        await worker()
    else:
        await asyncio.gather(*[worker() for _ in range(tasks)])
    if aio:
        ok = await settle(c, cfg) and ok
    us = elapsed_us(t0)
    i = count[0]
    mark(cfg)
    await close(c)
    result({"n": i, "us": us, "rate": i * 1000000 / us, "acked": ok, "capped": i < n_max})


async def sc_rtt(cfg):
    import asyncio

    k = Counter()
    k.event = asyncio.Event()
    msgs = cfg.get("msgs")
    c = await new_client(cfg, k.cb)
    await c.subscribe(TOPIC)
    cap_us = cfg["cap_ms"] * 1000
    samples = []
    warm = cfg.get("warmup", 10)
    t_start = ticks_us()
    j = 0
    while len(samples) < cfg["n"]:
        if j == warm:
            mark(cfg)
        k.event.clear()
        t = ticks_us()
        await c.publish(TOPIC, PAYLOAD)
        if msgs:
            await next_message(c, k)
        else:
            await k.event.wait()
        dt = elapsed_us(t)
        j += 1
        if j > warm:
            samples.append(dt)
        if elapsed_us(t_start) > cap_us:
            break
    mark(cfg)
    await close(c)
    samples.sort()
    result(
        {
            "samples": len(samples),
            "n": len(samples),
            "p50_us": percentile(samples, 50),
            "p99_us": percentile(samples, 99),
            "capped": len(samples) < cfg["n"],
        }
    )


async def sc_recv(cfg):
    import asyncio

    k = Counter()
    c = await new_client(cfg, k.cb)
    await c.subscribe(TOPIC)
    cap_us = cfg["cap_ms"] * 1000
    mark(cfg)
    ready()
    capped = False
    if cfg.get("msgs"):
        async for topic, msg, retained in c.messages():
            k.cb(topic, msg, retained)
            if k.end:
                break
            if elapsed_us(k.t_first) > cap_us:
                capped = True
                break
    else:
        while not k.end:
            await asyncio.sleep_ms(2)
            if k.n and elapsed_us(k.t_first) > cap_us:
                capped = True
                break
    us = k.t_last - k.t_first if k.n > 1 else 0
    mark(cfg)
    await close(c)
    result(
        {
            "received": k.n,
            "expected": cfg["n"],
            "n": k.n + (1 if k.end else 0),
            "end_seen": k.end,
            "us": us,
            "rate": (k.n - 1) * 1000000 / us if us > 0 else 0,
            "capped": capped,
        }
    )


async def _aio_publish_alloc(c, cfg, res):
    # mote.aio. "pub_q<n>": n times `await c.publish(...)` and, at QoS 1/2, waiting for its
    # acknowledgement before the next (`while c.pending(): await asyncio.sleep_ms(0)`).
    # "stream_q<n>": n publishes in a row, then `await c.flush()`: a publish that finds
    # the outbox full waits in a coroutine, and flush() is one. "locked_q<n>": one
    # publish-and-wait under heap_lock (before any subscription: what comes back would be
    # a received message, which allocates).
    import asyncio

    import micropython

    n = cfg["n"]
    for qos in cfg["qos_list"]:
        for _ in range(5):
            await c.publish(TOPIC, PAYLOAD, False, qos)
            while c.pending():
                await asyncio.sleep_ms(0)
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        i = 0
        while i < n:
            await c.publish(TOPIC, PAYLOAD, False, qos)
            while c.pending():
                await asyncio.sleep_ms(0)
            i += 1
        a1 = gc.mem_alloc()
        gc.enable()
        res["pub_q%d" % qos] = a1 - a0
        if qos:
            gc.collect()
            gc.disable()
            a0 = gc.mem_alloc()
            i = 0
            while i < n:
                await c.publish(TOPIC, PAYLOAD, False, qos)
                i += 1
            left = await c.flush(FLUSH_TIMEOUT_MS)
            a1 = gc.mem_alloc()
            gc.enable()
            if not left:
                res["stream_q%d" % qos] = a1 - a0
        gc.collect()
        err = "ok"
        exc = None
        where = " in publish()"  # both strings exist before the lock: nothing to allocate
        micropython.heap_lock()
        try:
            await c.publish(TOPIC, PAYLOAD, False, qos)
            where = " waiting for the ack"
            while c.pending():
                await asyncio.sleep_ms(0)
        except Exception as e:  # noqa: BLE001 -- any failure under the lock is the finding
            exc = e
        micropython.heap_unlock()
        if exc is not None:
            err = exc.__class__.__name__ + where
        res["locked_q%d" % qos] = err


async def sc_alloc(cfg):
    import asyncio

    import micropython

    aio = cfg["client"] == AIO
    if not aio:
        import mqtt_as

        mqtt_as.gc = _NoCollect()
    n = cfg["n"]
    res = {"n": n}
    k = Counter()
    c = await new_client(cfg, k.cb)
    if aio:
        await _aio_publish_alloc(c, cfg, res)
    else:
        for qos in cfg["qos_list"]:
            nq = n if qos == 0 else cfg.get("n_q1", n)
            for _ in range(2):
                await c.publish(TOPIC, PAYLOAD, False, qos)
            gc.collect()
            gc.disable()
            a0 = gc.mem_alloc()
            i = 0
            while i < nq:
                await c.publish(TOPIC, PAYLOAD, False, qos)
                i += 1
            a1 = gc.mem_alloc()
            gc.enable()
            # Normalised to n messages, as the orchestrator divides by n.
            res["pub_q%d" % qos] = (a1 - a0) * n // nq
    await c.subscribe(TOPIC)
    warm = cfg["recv_warmup"]
    k.mark_at = (warm, warm + n, warm + 2 * n, -1)
    total = warm + 2 * n
    gc.collect()
    gc.disable()
    ready()
    while k.n < total:
        await asyncio.sleep_ms(5)
    gc.enable()
    res["recv_small"] = k.marks[1] - k.marks[0]
    res["recv_large"] = k.marks[2] - k.marks[1]
    if not aio:
        for qos in cfg["qos_list"]:
            gc.collect()
            err = "ok"
            micropython.heap_lock()
            try:
                await c.publish(TOPIC, PAYLOAD, False, qos)
            except Exception as e:  # noqa: BLE001 -- any failure under the lock is the finding
                err = e.__class__.__name__
            micropython.heap_unlock()
            res["locked_q%d" % qos] = err
    idle_ms = cfg.get("idle_ms")
    if idle_ms:
        # Connected and idle (the subscription stays, nothing arrives): bytes per second.
        await asyncio.sleep_ms(100)
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        await asyncio.sleep_ms(idle_ms)
        a1 = gc.mem_alloc()
        gc.enable()
        res["idle_per_s"] = (a1 - a0) * 1000 // idle_ms
    await close(c)
    result(res)


def ram_imports(cfg):
    # Synchronous part, before any event loop exists, so asyncio is not in the baseline.
    gc.collect()
    a0 = gc.mem_alloc()
    import asyncio  # noqa: F401 -- counted: neither client runs without it

    gc.collect()
    a_aio = gc.mem_alloc()
    if cfg["client"] == AIO:
        import mote.aio  # noqa: F401
    else:
        import mqtt_as  # noqa: F401

    gc.collect()
    a1 = gc.mem_alloc()
    c = make_client(cfg)
    gc.collect()
    a2 = gc.mem_alloc()
    cfg["_ram"] = (a0, a_aio, a1, a2, c)


async def sc_ram(cfg):
    a0, a_aio, a1, a2, c = cfg["_ram"]
    if cfg["client"] == AIO:
        await c.connect()
    else:
        await c.connect(quick=True)
    gc.collect()
    a3 = gc.mem_alloc()
    await close(c)
    result({"import": a1 - a0, "asyncio": a_aio - a0, "construct": a2 - a0, "connect": a3 - a0})


async def sc_heap(cfg):
    # Publish n QoS 0 messages to the own subscription, then receive them all.
    import asyncio

    k = Counter()
    k.event = asyncio.Event()
    c = await new_client(cfg, k.cb)
    await c.subscribe(TOPIC)
    n = cfg["n"]
    for _ in range(n):
        await c.publish(TOPIC, PAYLOAD)
    while k.n < n:
        k.event.clear()
        await k.event.wait()
    await close(c)
    result({"ok": k.n == n})


def _die(loop, context):
    # A task failed (e.g. MemoryError in mqtt_as's receive task): end the process now
    # instead of waiting for a message that will never come.
    print("task failed:", context.get("exception"))
    sys.exit(3)


SCENARIOS = {
    "pub": sc_pub,
    "rtt": sc_rtt,
    "recv": sc_recv,
    "alloc": sc_alloc,
    "ram": sc_ram,
    "heap": sc_heap,
}


def main():
    cfg = args()
    scen = SCENARIOS[cfg["scen"]]
    if cfg["scen"] == "ram":
        ram_imports(cfg)
    import asyncio

    asyncio.get_event_loop().set_exception_handler(_die)
    asyncio.run(scen(cfg))


if __name__ == "__main__" or sys.argv[0] == "basync":
    main()
