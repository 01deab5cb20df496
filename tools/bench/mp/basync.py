# Benchmark scenarios for mqtt_as (asyncio), run on the MicroPython unix port, one scenario
# per process: micropython -m basync '<json parameters>'. Same scenarios and output as bsync.py.
# mqtt_as needs the `network` and `machine` stand-ins from stubs/ on the module path.
# asyncio is imported lazily so that the RAM scenario counts it as part of mqtt_as's cost.
import gc
import sys
from time import ticks_us

import benchlib
from benchlib import HOST, PAYLOAD, TOPIC, args, elapsed_us, mark, percentile, ready, result


class _NoCollect:
    # mqtt_as calls gc.collect() once a second; allocation counts need the heap left alone.
    def collect(self):
        pass

    def mem_alloc(self):
        return gc.mem_alloc()

    def mem_free(self):
        return gc.mem_free()


class Counter(benchlib.Counter):
    # mqtt_as calls back with a third argument, and a waiting task may need waking.
    def __init__(self):
        super().__init__()
        self.event = None

    def cb(self, topic, msg, retained):
        self.count(msg)
        if self.event is not None:
            self.event.set()


def make_client(cfg, cb=None, suffix=""):
    import mqtt_as

    conf = dict(mqtt_as.config)
    conf["server"] = HOST
    conf["port"] = cfg["port"]
    conf["client_id"] = cfg["client_id"] + suffix
    conf["keepalive"] = 60
    conf["queue_len"] = 0  # callback interface, the lighter of the two
    if cb is not None:
        conf["subs_cb"] = cb
    return mqtt_as.MQTTClient(conf)


async def new_client(cfg, cb=None, suffix=""):
    c = make_client(cfg, cb, suffix)
    await c.connect(quick=True)
    return c


async def close(c):
    try:
        await c.disconnect()
    except OSError:
        pass


async def sc_pub(cfg):
    qos = cfg["qos"]
    n_max = cfg["n"]
    cap_us = cfg["cap_ms"] * 1000
    c = await new_client(cfg)
    for _ in range(cfg.get("warmup", 20) if qos == 0 else 2):
        await c.publish(TOPIC, PAYLOAD, False, qos)
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

    if tasks == 1:
        await worker()
    else:
        import asyncio

        await asyncio.gather(*[worker() for _ in range(tasks)])
    us = elapsed_us(t0)
    i = count[0]
    mark(cfg)
    await close(c)
    result({"n": i, "us": us, "rate": i * 1000000 / us, "acked": True, "capped": i < n_max})


async def sc_rtt(cfg):
    import asyncio

    k = Counter()
    k.event = asyncio.Event()
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


async def sc_alloc(cfg):
    import asyncio

    import micropython
    import mqtt_as

    mqtt_as.gc = _NoCollect()
    n = cfg["n"]
    res = {"n": n}
    k = Counter()
    c = await new_client(cfg, k.cb)
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
    await close(c)
    result(res)


def ram_imports(cfg):
    # Synchronous part, before any event loop exists, so asyncio is not in the baseline.
    gc.collect()
    a0 = gc.mem_alloc()
    import asyncio  # noqa: F401 -- counted: mqtt_as cannot run without it

    gc.collect()
    a_aio = gc.mem_alloc()
    import mqtt_as  # noqa: F401

    gc.collect()
    a1 = gc.mem_alloc()
    c = make_client(cfg)
    gc.collect()
    a2 = gc.mem_alloc()
    cfg["_ram"] = (a0, a_aio, a1, a2, c)


async def sc_ram(cfg):
    a0, a_aio, a1, a2, c = cfg["_ram"]
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
