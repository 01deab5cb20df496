# Benchmark scenarios for the blocking clients (mote, umqtt.simple, umqtt.robust), run on the
# MicroPython unix port, one scenario per process: micropython -m bsync '<json parameters>'.
# Prints progress-free output: READY lines for the orchestrator's flood and one RESULT line.
import gc
import sys
from time import ticks_us

from benchlib import (
    HOST,
    PAYLOAD,
    TOPIC,
    Counter,
    args,
    elapsed_us,
    mark,
    percentile,
    ready,
    result,
    wait_go,
)

# mote's constructor options that are not part of umqtt's API, kept in this one place.
# The zero-copy flag's name is not fixed yet: change MOTE_ZERO_COPY_KW when it is.
MOTE_ZERO_COPY_KW = "zero_copy"
# Extra constructor options for mote (e.g. a larger receive buffer for 1000-byte payloads).
MOTE_EXTRA_KW = {}

FLUSH_TIMEOUT_MS = 10000


def import_client(kind):
    if kind == "mote":
        from mote import MQTTClient
    elif kind == "umqtt.simple":
        from umqtt.simple import MQTTClient
    elif kind == "umqtt.robust":
        from umqtt.robust import MQTTClient
    else:
        raise ValueError("unknown client", kind)
    return MQTTClient


def construct(cls, cfg, suffix=""):
    cid = cfg["client_id"] + suffix
    if cfg["client"] == "mote":
        kw = {}
        for k in MOTE_EXTRA_KW:
            kw[k] = MOTE_EXTRA_KW[k]
        if "max_inflight" in cfg:
            kw["max_inflight"] = cfg["max_inflight"]
        if cfg.get("zero_copy"):
            kw[MOTE_ZERO_COPY_KW] = True
        if "mote_nodelay" in cfg:
            kw["nodelay"] = cfg["mote_nodelay"]
        return cls(cid, HOST, cfg["port"], keepalive=60, **kw)
    return cls(cid, HOST, cfg["port"], keepalive=60)


def connect(c, cfg):
    c.connect()
    if cfg.get("nodelay"):
        # IPPROTO_TCP = 6, TCP_NODELAY = 1 (the unix port's socket module lacks the names).
        c.sock.setsockopt(6, 1, 1)


def settle(c, cfg):
    """Wait until every QoS 1/2 message is acknowledged (mote); umqtt's publish already waits."""
    if cfg["client"] == "mote":
        c.flush(FLUSH_TIMEOUT_MS)
        return c.pending() == 0
    return True


def close(c):
    try:
        c.disconnect()
    except OSError:
        pass


def new_client(cfg, cb=None, suffix=""):
    c = construct(import_client(cfg["client"]), cfg, suffix)
    if cb is not None:
        c.set_callback(cb)
    connect(c, cfg)
    return c


def sc_pub(cfg):
    qos = cfg["qos"]
    n_max = cfg["n"]
    cap_us = cfg["cap_ms"] * 1000
    c = new_client(cfg)
    for _ in range(cfg.get("warmup", 20)):
        c.publish(TOPIC, PAYLOAD, False, qos)
    ok = settle(c, cfg)
    gc.collect()
    mark(cfg)
    i = 0
    t0 = ticks_us()
    while i < n_max:
        c.publish(TOPIC, PAYLOAD, False, qos)
        i += 1
        if not i & 3 and elapsed_us(t0) > cap_us:
            break
    ok = settle(c, cfg) and ok
    us = elapsed_us(t0)
    mark(cfg)
    close(c)
    result({"n": i, "us": us, "rate": i * 1000000 / us, "acked": ok, "capped": i < n_max})


def raw_exchange(c, how):
    # The same round trip on the connection's socket with no client code at all: the
    # PUBLISH written in one call, then either poll() and non-blocking reads ("poll", what a
    # client that must never block does) or one blocking read of its exact length ("block",
    # umqtt's way). Only the set-up (connect, subscribe) is the client's.
    import select

    sock = c.sock
    pkt = bytes([0x30, 2 + len(TOPIC) + len(PAYLOAD), 0, len(TOPIC)]) + TOPIC + PAYLOAD
    n = len(pkt)
    buf = bytearray(n)
    if how == "block":
        sock.setblocking(True)

        def once():
            t = ticks_us()
            sock.write(pkt)
            sock.readinto(buf, n)  # a blocking stream read returns once all n are in
            return elapsed_us(t)

        return once
    p = select.poll()
    p.register(sock, select.POLLIN)
    mv = memoryview(buf)

    def once():
        t = ticks_us()
        sock.write(pkt)
        got = 0
        while got < n:
            for _ in p.ipoll(1000):
                pass
            r = sock.readinto(mv[got:] if got else buf, n - got)
            if r:
                got += r
        return elapsed_us(t)

    return once


def sc_rtt(cfg):
    got = [0]

    def cb(topic, msg):
        got[0] = 1

    c = new_client(cfg, cb)
    c.subscribe(TOPIC)
    cap_us = cfg["cap_ms"] * 1000

    def once():
        got[0] = 0
        t = ticks_us()
        c.publish(TOPIC, PAYLOAD)
        while not got[0]:
            c.wait_msg()
        return elapsed_us(t)

    if cfg.get("raw"):
        once = raw_exchange(c, cfg["raw"])

    for _ in range(cfg.get("warmup", 10)):
        once()
    mark(cfg)
    samples = []
    t_start = ticks_us()
    while len(samples) < cfg["n"]:
        samples.append(once())
        if elapsed_us(t_start) > cap_us:
            break
    mark(cfg)
    close(c)
    n = len(samples)
    samples.sort()
    result(
        {
            "samples": n,
            "n": n,
            "p50_us": percentile(samples, 50),
            "p99_us": percentile(samples, 99),
            "capped": n < cfg["n"],
        }
    )


def sc_recv(cfg):
    # loop "wait": `while True: c.wait_msg()`, umqtt's way; "check": mote's non-blocking
    # check_msg() in a busy loop. backlog: each round's flood is in the socket before the
    # first read (rounds of n messages, each small enough for the socket's buffer).
    k = Counter()
    c = new_client(cfg, k.cb)
    c.subscribe(TOPIC)
    cap_us = cfg["cap_ms"] * 1000
    check = cfg.get("loop") == "check"
    rounds = cfg.get("rounds", 1)
    us = 0
    capped = False
    mark(cfg)
    for _ in range(rounds):
        k.end = False
        k.first_at = k.n + 1
        n0 = k.n
        ready()
        wait_go(cfg)
        while not k.end:
            if check:
                c.check_msg()
            else:
                c.wait_msg()
            if k.n > n0 and elapsed_us(k.t_first) > cap_us:
                capped = True
                break
        if k.n - n0 > 1:
            us += k.t_last - k.t_first
        if capped:
            break
    mark(cfg)
    close(c)
    intervals = k.n - rounds
    result(
        {
            "received": k.n,
            "expected": cfg["n"] * rounds,
            "n": k.n + (1 if k.end else 0),
            "rounds": rounds,
            "end_seen": k.end,
            "us": us,
            "rate": intervals * 1000000 / us if us > 0 else 0,
            "capped": capped,
        }
    )


def sc_alloc(cfg):
    import micropython

    n = cfg["n"]
    res = {"n": n}
    k = Counter()
    c = new_client(cfg, k.cb)
    for qos in cfg["qos_list"]:
        for _ in range(5):
            c.publish(TOPIC, PAYLOAD, False, qos)
        settle(c, cfg)
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        i = 0
        while i < n:
            c.publish(TOPIC, PAYLOAD, False, qos)
            i += 1
        settle(c, cfg)
        a1 = gc.mem_alloc()
        gc.enable()
        res["pub_q%d" % qos] = a1 - a0
    # Receive: the orchestrator sends warm-up, then n small, then n large payloads.
    c.subscribe(TOPIC)
    warm = cfg["recv_warmup"]
    k.mark_at = (warm, warm + n, warm + 2 * n, -1)
    total = warm + 2 * n
    gc.collect()
    gc.disable()
    ready()
    while k.n < total:
        c.wait_msg()
    gc.enable()
    res["recv_small"] = k.marks[1] - k.marks[0]
    res["recv_large"] = k.marks[2] - k.marks[1]
    close(c)
    # publish() (and, for mote, the acknowledgements) under heap_lock, each on a fresh client.
    for qos in cfg["qos_list"]:
        c = new_client(cfg, None, "-l%d" % qos)
        c.publish(TOPIC, PAYLOAD, False, qos)
        settle(c, cfg)
        gc.collect()
        err = "ok"
        exc = None
        where = " in publish()"  # both strings exist before the lock: nothing to allocate
        micropython.heap_lock()
        try:
            c.publish(TOPIC, PAYLOAD, False, qos)
            where = " in flush()"
            if not settle(c, cfg):
                err = "not acknowledged"
        except Exception as e:  # noqa: BLE001 -- any failure under the lock is the finding
            exc = e
        micropython.heap_unlock()
        if exc is not None:
            err = exc.__class__.__name__ + (where if cfg["client"] == "mote" else "")
        res["locked_q%d" % qos] = err
        close(c)
    result(res)


def sc_ram(cfg):
    gc.collect()
    a0 = gc.mem_alloc()
    cls = import_client(cfg["client"])
    gc.collect()
    a1 = gc.mem_alloc()
    c = construct(cls, cfg)
    gc.collect()
    a2 = gc.mem_alloc()
    res = {"import": a1 - a0, "construct": a2 - a0}
    if cfg["client"] == "mote":
        # The buffers its defaults chose (rx_size + tx_size + outbox_size) at this heap size.
        s = c._s
        res["buffers"] = len(s.rx_buf) + len(s._ctl) + len(s._ob)
    if cfg.get("no_connect"):
        # Import and construct only, no broker needed (tools/memory.py, the budget test).
        result(res)
        return
    connect(c, cfg)
    gc.collect()
    res["connect"] = gc.mem_alloc() - a0
    close(c)
    result(res)


def sc_heap(cfg):
    # Publish n QoS 0 messages to the own subscription, then receive them all.
    got = [0]

    def cb(topic, msg):
        got[0] += 1

    c = new_client(cfg, cb)
    c.subscribe(TOPIC)
    n = cfg["n"]
    for _ in range(n):
        c.publish(TOPIC, PAYLOAD)
    while got[0] < n:
        c.wait_msg()
    close(c)
    result({"ok": got[0] == n})


def main():
    cfg = args()
    SCENARIOS[cfg["scen"]](cfg)


SCENARIOS = {
    "pub": sc_pub,
    "rtt": sc_rtt,
    "recv": sc_recv,
    "alloc": sc_alloc,
    "ram": sc_ram,
    "heap": sc_heap,
}

if __name__ == "__main__" or sys.argv[0] == "bsync":
    main()
