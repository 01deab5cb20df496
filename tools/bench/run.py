"""mote benchmark: mote side by side with umqtt.simple, umqtt.robust and mqtt_as, and
mote.aio (mote's asyncio client) beside mqtt_as.

Every client runs on the same MicroPython unix port against a private local mosquitto, each
scenario in its own process (tools/bench/mp/), and the results go to docs/benchmarks.md with a
PNG chart. Usage (from the repository root):

    python tools/bench/run.py [--umqtt-src DIR] [--mqtt-as-src DIR] [--cache DIR]
    python tools/bench/run.py --smoke          # tiny N, mote and mote.aio alone, no download,
                                               # no docs

The competitors are fetched into the cache (default ~/.cache/mote-bench), never into the
repository: see competitors.py. Loopback only; every run has a time cap and a timeout.
"""

import argparse
import json
import os
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import broker  # noqa: E402
import competitors  # noqa: E402
import report  # noqa: E402

MP_DIR = os.path.join(HERE, "mp")
MOTE_SRC = os.path.join(ROOT, "lib", "mote")
TOPIC = b"mote/bench/topic"  # keep in step with mp/benchlib.py
PAYLOAD_LEN = 32

# name -> parameters for the MicroPython side; "client" picks the library. "mote" is mote at
# its default settings; the nodelay rows set TCP_NODELAY explicitly either way. The asyncio
# rows (ASYNC_CLIENTS) run in mp/basync.py: "mote.aio" streams its QoS 1/2 publishes and
# flush()es at the end, "mote.aio await each ack" waits for each acknowledgement before the
# next publish (what mqtt_as's publish does), "mote.aio messages()" receives with
# `async for` instead of the callback.
VARIANTS = {
    "mote": {"client": "mote", "max_inflight": 8},
    "mote nodelay=True": {"client": "mote", "max_inflight": 8, "mote_nodelay": True},
    "mote nodelay=False": {"client": "mote", "max_inflight": 8, "mote_nodelay": False},
    "mote inflight=1": {"client": "mote", "max_inflight": 1},
    "mote check_msg()": {"client": "mote", "max_inflight": 8, "loop": "check"},
    "mote zero-copy": {"client": "mote", "max_inflight": 8, "zero_copy": True},
    "umqtt.simple": {"client": "umqtt.simple"},
    "umqtt.simple+NODELAY": {"client": "umqtt.simple", "nodelay": 1},
    "umqtt.robust": {"client": "umqtt.robust"},
    "mqtt_as": {"client": "mqtt_as"},
    "mqtt_as 8 tasks": {"client": "mqtt_as", "tasks": 8},
    "mote.aio": {"client": "mote.aio", "max_inflight": 8},
    "mote.aio await each ack": {"client": "mote.aio", "max_inflight": 8, "each": True},
    "mote.aio 8 tasks": {"client": "mote.aio", "max_inflight": 8, "tasks": 8},
    "mote.aio messages()": {"client": "mote.aio", "max_inflight": 8, "msgs": True},
    # The round trip's floor: the same exchange on a bare socket (set up by mote), no client
    # code: with poll() and non-blocking reads, and with one blocking read.
    "socket only, poll + read": {"client": "mote", "max_inflight": 8, "raw": "poll"},
    "socket only, blocking read": {"client": "mote", "max_inflight": 8, "raw": "block"},
}
ASYNC_CLIENTS = ("mqtt_as", "mote.aio")
CLIENTS = ["mote", "umqtt.simple", "umqtt.robust", "mqtt_as", "mote.aio"]

_NODELAY_PAIR = ["mote", "mote nodelay=True", "mote nodelay=False"]
_UMQTT = ["umqtt.simple", "umqtt.simple+NODELAY", "umqtt.robust"]

# scenario id -> (title, variants)
SCENARIOS = {
    "pub_q0": ("1. QoS 0 publish", _NODELAY_PAIR + _UMQTT + ["mqtt_as", "mote.aio"]),
    "pub_q1": (
        "2. QoS 1 publish",
        _NODELAY_PAIR
        + ["mote inflight=1"]
        + _UMQTT
        + ["mqtt_as", "mqtt_as 8 tasks", "mote.aio", "mote.aio await each ack"]
        + ["mote.aio 8 tasks"],
    ),
    "pub_q2": ("3. QoS 2 publish", ["mote", "mote inflight=1", "mote.aio"]),
    "recv": (
        "4. Receive (QoS 0 flood)",
        ["mote", "mote check_msg()", "mote zero-copy"]
        + _UMQTT
        + ["mqtt_as", "mote.aio", "mote.aio messages()"],
    ),
    "recv_backlog": (
        "5. Receive from a backlog",
        ["mote", "mote check_msg()", "mote zero-copy"] + _UMQTT,
    ),
    "rtt": (
        "6. Round trip (QoS 0)",
        _NODELAY_PAIR
        + ["mote zero-copy"]
        + _UMQTT
        + ["mqtt_as", "mote.aio", "mote.aio messages()"]
        + ["socket only, poll + read", "socket only, blocking read"],
    ),
    "alloc": (
        "7. Allocation",
        ["mote", "mote zero-copy", "umqtt.simple", "umqtt.robust", "mqtt_as", "mote.aio"],
    ),
    "ram": (
        "8. RAM and code size",
        ["mote", "umqtt.simple", "umqtt.robust", "mqtt_as", "mote.aio"],
    ),
    "heap": ("9. Minimum heap", ["mote", "umqtt.simple", "umqtt.robust", "mqtt_as", "mote.aio"]),
    "syscalls": (
        "10. System calls",
        ["mote", "umqtt.simple", "umqtt.simple+NODELAY", "umqtt.robust", "mqtt_as"],
    ),
}

FULL = {
    "runs": 3,  # allocation, RAM, heap confirmations, strace pairs (near-deterministic)
    "runs_timing": 5,  # throughput and latency (noisy on a shared machine)
    "pub_n": 1_000_000,
    "pub_cap_ms": 1000,
    "recv_n": 20_000,
    "recv_cap_ms": 2000,
    "backlog_n": 2000,  # 104 kB of PUBLISH packets: fits a default 128 kB socket buffer
    "backlog_rounds": 10,
    "rtt_n": 1000,
    "rtt_cap_ms": 2000,
    "alloc_n": 100,
    "alloc_n_slow": 10,
    "alloc_warm": 20,
    "idle_ms": 1000,  # asyncio clients: bytes allocated while connected and idle
    "heap_n": 100,
    "heap_lo": 4096,
    "heap_hi": 256 * 1024,
    "heap_step": 256,
    "sys_pub": (200, 2200),
    "sys_recv": (100, 1100),
    "sys_recv_slow": (50, 250),
}
SMOKE = {
    "runs": 1,
    "runs_timing": 1,
    "pub_n": 200,
    "pub_cap_ms": 300,
    "recv_n": 200,
    "recv_cap_ms": 1000,
    "backlog_n": 200,
    "backlog_rounds": 2,
    "rtt_n": 20,
    "rtt_cap_ms": 500,
    "alloc_n": 20,
    "alloc_n_slow": 5,
    "alloc_warm": 5,
    "idle_ms": 100,
    "heap_n": 10,
    "heap_lo": 8192,
    "heap_hi": 256 * 1024,
    "heap_step": 32 * 1024,
    "sys_pub": (20, 120),
    "sys_recv": (20, 120),
    "sys_recv_slow": (10, 30),
}


class RunError(Exception):
    pass


def tool(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else shutil.which(name)


def log(msg):
    print(msg, flush=True)


# --- building the module trees ---------------------------------------------------------


def mpy_cross(mpy_cross_bin, src, dst, flags=()):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    cmd = [mpy_cross_bin, *flags, "-o", dst, src]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RunError(f"mpy-cross failed on {src}: {r.stderr.strip()}")


def compile_tree(mpy_cross_bin, src_root, rel_files, dst_root, flags=(), load_root=None):
    """Compile src_root/rel (each .py) into dst_root/rel.mpy; returns {rel: size}.
    flags: extra mpy-cross options (e.g. ["-O2"]; tools/memory.py uses them). load_root:
    dst_root as the VM's path will name it (default: dst_root itself)."""
    sizes = {}
    for rel in rel_files:
        dst = os.path.join(dst_root, rel[:-3] + ".mpy")
        # -s: the path it is imported from, which becomes __file__: one interned string
        # for both, as tools/deploy.py does for a board.
        name = os.path.join(load_root or dst_root, rel[:-3] + ".mpy")
        mpy_cross(mpy_cross_bin, os.path.join(src_root, rel), dst, (*flags, "-s", name))
        sizes[rel] = os.path.getsize(dst)
    return sizes


def py_files(root, sub):
    out = []
    for dirpath, _, names in os.walk(os.path.join(root, sub)):
        for n in sorted(names):
            if n.endswith(".py"):
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


_compile_tree = compile_tree
AIO_FILES = ("mote/aio.py", "mote/compat_aio.py")  # only mote.aio imports these


class Trees:
    """Where each client's modules live, as .py and as .mpy, for MICROPYPATH."""

    def __init__(
        self, build, mpy_cross_bin, comps, mote_ok, flags=(), load_base=None, mote_lib=None
    ):
        # load_base: the folder the VM's path will be relative to (tools/memory.py), so
        # that each .mpy's source name is its __file__.
        def compile_tree(mpy_cross_bin, src_root, rel_files, dst_root, flags):
            root = os.path.relpath(dst_root, load_base) if load_base else None
            return _compile_tree(mpy_cross_bin, src_root, rel_files, dst_root, flags, root)

        self.py = {}
        self.mpy = {}
        self.sizes = {}  # client -> {module: .mpy bytes}
        h_py = py_files(MP_DIR, "")
        hm = os.path.join(build, "harness")
        compile_tree(mpy_cross_bin, MP_DIR, h_py, hm, flags)
        self.harness = {"py": [MP_DIR], "mpy": [hm]}
        self.stubs = {"py": [os.path.join(MP_DIR, "stubs")], "mpy": [os.path.join(hm, "stubs")]}
        if mote_ok:
            lib = mote_lib or os.path.join(ROOT, "lib")
            files = py_files(lib, "mote")
            dst = os.path.join(build, "mote")
            s = compile_tree(mpy_cross_bin, lib, files, dst, flags)
            self.py["mote"] = [lib]
            self.mpy["mote"] = [dst]
            # The blocking client's package without the asyncio client's own modules;
            # mote.aio's code is all of it.
            self.sizes["mote"] = {k: n for k, n in s.items() if k not in AIO_FILES}
            if AIO_FILES[0] in s:
                self.py["mote.aio"] = [lib]
                self.mpy["mote.aio"] = [dst]
                self.sizes["mote.aio"] = s
        if "path" in comps.get("umqtt", {}):
            src = comps["umqtt"]["path"]
            dst = os.path.join(build, "umqtt")
            s = compile_tree(
                mpy_cross_bin, src, ["umqtt/simple.py", "umqtt/robust.py"], dst, flags
            )
            for c in ("umqtt.simple", "umqtt.robust"):
                self.py[c] = [src]
                self.mpy[c] = [dst]
            self.sizes["umqtt.simple"] = {"umqtt/simple.py": s["umqtt/simple.py"]}
            self.sizes["umqtt.robust"] = s
        if "path" in comps.get("mqtt_as", {}):
            src = comps["mqtt_as"]["path"]
            dst = os.path.join(build, "mqtt_as")
            s = compile_tree(mpy_cross_bin, src, ["mqtt_as/__init__.py"], dst, flags)
            self.py["mqtt_as"] = [src]
            self.mpy["mqtt_as"] = [dst]
            self.sizes["mqtt_as"] = s

    def path(self, client, mode):
        trees = self.py if mode == "py" else self.mpy
        p = self.harness["mpy"] + trees[client]
        if client == "mqtt_as":
            p = p + self.stubs["mpy"]
        return ":".join(p + [".frozen"])


# --- running one MicroPython process ---------------------------------------------------


# Per-socket TCP counters (tcp_info, as `ss -ti` prints them) of the client's connection.
TCP_KEYS = ("segs_out", "segs_in", "data_segs_out", "data_segs_in", "bytes_sent", "bytes_received")


def tcp_counters(ss_bin, pid, port):
    """The TCP counters of process pid's established connections to the broker's port,
    summed, plus "recv_q" (bytes received and not yet read). Counts this one socket only,
    so other traffic on the machine (other tests, other brokers) does not show."""
    r = subprocess.run(
        [ss_bin, "-tinpH", "state", "established", "dport", "=", ":%d" % port],
        capture_output=True,
        text=True,
        timeout=10,
    )
    out = dict.fromkeys(TCP_KEYS, 0)
    out["recv_q"] = 0
    out["sockets"] = 0
    mine = False
    for line in r.stdout.splitlines():
        if line[:1].isspace():
            if mine:
                for tok in line.split():
                    k, _, v = tok.partition(":")
                    if k in TCP_KEYS and v.isdigit():
                        out[k] += int(v)
            continue
        mine = "pid=%d," % pid in line
        if mine:
            out["sockets"] += 1
            out["recv_q"] += int(line.split()[0])
    return out


def placement(pin):
    """(broker and orchestrator CPUs, client CPUs), or None to leave placement to the
    scheduler. Round trips on one core and across two differ by tens of µs (a cross-core
    wake-up), and the scheduler picks either at random per process: pinning makes every
    client's run take the same path. The client gets a core of its own, as it would
    have on a device talking to a broker elsewhere."""
    if not pin or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, {cpus[1]}


class Runner:
    def __init__(self, micropython, trees, brk, workdir, strace_bin, ss_bin=None, cpus=None):
        self.micropython = micropython
        self.cpus = cpus  # the client's CPUs (None: anywhere)
        self.trees = trees
        self.broker = brk
        self.workdir = workdir
        self.strace = strace_bin
        self.ss = ss_bin  # None: no segment counts
        self.seq = 0

    def _buffered(self, pid, want, timeout_s=10.0):
        # Wait until the flood sits in the client's socket (want bytes), or stops growing.
        last, still = -1, 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            q = tcp_counters(self.ss, pid, self.broker.port)["recv_q"]
            if q >= want:
                return q
            still = still + 1 if q == last else 0
            if still >= 10 and q > 0:
                return q
            last = q
            time.sleep(0.03)
        return last

    def run(
        self, variant, cfg, mode="mpy", flood=None, heapsize=None, strace_out=None, timeout_s=30.0
    ):
        """One scenario in one process. flood: segments sent when the client says READY.
        cfg["marks"]: count the client's TCP segments between its two MARK lines (needs
        ss); cfg["backlog"]: the client reads the flood only once it is buffered."""
        self.seq += 1
        v = VARIANTS[variant]
        params = dict(v)
        params.update(cfg)
        params["port"] = self.broker.port
        params["client_id"] = "bench-%d-%d" % (os.getpid(), self.seq)
        if not self.ss:
            params.pop("marks", None)
            params.pop("backlog", None)
        talk = bool(params.get("marks") or params.get("backlog"))
        script = "basync" if v["client"] in ASYNC_CLIENTS else "bsync"
        cmd = [self.micropython]
        if heapsize:
            cmd += ["-X", "heapsize=%d" % heapsize]
        cmd += ["-m", script, json.dumps(params)]
        if strace_out:
            cmd = [self.strace, "-f", "-c", "-o", strace_out] + cmd
        env = dict(os.environ)
        env["MICROPYPATH"] = self.trees.path(v["client"], mode)
        err_path = os.path.join(self.workdir, "stderr.txt")
        cpus = self.cpus
        with open(err_path, "w") as err:
            proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.PIPE if talk else subprocess.DEVNULL,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        res = None
        snaps = []
        buffered = None
        deadline = time.monotonic() + timeout_s
        buf = b""

        def answer(text):
            assert proc.stdin is not None
            proc.stdin.write(text)
            proc.stdin.flush()

        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RunError("timed out after %.0f s" % timeout_s)
                r, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
                if not r:
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.decode(errors="replace").strip()
                    if line == "READY" and flood is not None:
                        broker.flood(self.broker.port, TOPIC, flood)
                        if params.get("backlog"):
                            want = sum(n * len(broker.publish_packet(TOPIC, p)) for n, p in flood)
                            buffered = (self._buffered(proc.pid, want), want)
                            answer(b"GO\n")
                    elif line == "MARK":
                        snaps.append(tcp_counters(self.ss, proc.pid, self.broker.port))
                        answer(b"\n")
                    elif line.startswith("RESULT "):
                        res = json.loads(line[7:])
            proc.wait(max(1.0, deadline - time.monotonic()))
        except (RunError, subprocess.TimeoutExpired, OSError) as e:
            proc.kill()
            proc.wait()
            raise RunError(str(e) if isinstance(e, RunError) else "did not exit: %s" % e)
        finally:
            proc.stdout.close()
            if proc.stdin is not None:
                proc.stdin.close()
        if proc.returncode != 0 or res is None:
            with open(err_path) as f:
                tail = f.read().strip().splitlines()[-6:]
            raise RunError("exit %s: %s" % (proc.returncode, " | ".join(tail) or "no result"))
        if len(snaps) == 2 and snaps[0]["sockets"] == 1 and snaps[1]["sockets"] == 1:
            res["tcp"] = {k: snaps[1][k] - snaps[0][k] for k in TCP_KEYS}
        if buffered is not None:
            res["buffered"] = buffered
        return res


def payload(n, fill=b"p"):
    return (fill * n)[:n]


# --- scenarios ---------------------------------------------------------------------------


def flood_segments(n):
    return [(n, payload(PAYLOAD_LEN)), (1, broker.end_payload(PAYLOAD_LEN))]


def one_run(runner, scen, variant, P, mode="mpy"):
    v = VARIANTS[variant]
    slow = v["client"] == "mqtt_as"
    if scen.startswith("pub_q"):
        cfg = {"scen": "pub", "qos": int(scen[-1]), "n": P["pub_n"], "cap_ms": P["pub_cap_ms"]}
        cfg["marks"] = True
        return runner.run(variant, cfg, timeout_s=P["pub_cap_ms"] / 1000 + 30)
    if scen == "recv":
        cfg = {"scen": "recv", "n": P["recv_n"], "cap_ms": P["recv_cap_ms"], "marks": True}
        return runner.run(
            variant, cfg, flood=flood_segments(P["recv_n"]), timeout_s=P["recv_cap_ms"] / 1000 + 30
        )
    if scen == "recv_backlog":
        n = P["backlog_n"]
        cfg = {"scen": "recv", "n": n, "rounds": P["backlog_rounds"], "cap_ms": P["recv_cap_ms"]}
        cfg.update(marks=True, backlog=True)
        return runner.run(variant, cfg, flood=flood_segments(n), timeout_s=60)
    if scen == "rtt":
        cfg = {"scen": "rtt", "n": P["rtt_n"], "cap_ms": P["rtt_cap_ms"], "marks": True}
        return runner.run(variant, cfg, timeout_s=P["rtt_cap_ms"] / 1000 + 30)
    if scen == "alloc":
        n = P["alloc_n"]
        qos = [0, 1, 2] if v["client"] in ("mote", "mote.aio") else [0, 1]
        cfg = {
            "scen": "alloc",
            "n": n,
            "qos_list": qos,
            "recv_warmup": P["alloc_warm"],
            "n_q1": P["alloc_n_slow"] if slow else n,
        }
        if v["client"] in ASYNC_CLIENTS and P.get("idle_ms"):
            cfg["idle_ms"] = P["idle_ms"]
        segs = [(P["alloc_warm"], payload(10)), (n, payload(10)), (n, payload(1000))]
        return runner.run(variant, cfg, flood=segs, timeout_s=60)
    if scen == "ram":
        return runner.run(variant, {"scen": "ram"}, mode=mode, timeout_s=30)
    raise ValueError(scen)


def bisect_smallest(ok, lo, hi, step):
    """The smallest size, a multiple of step in (lo, hi], at which ok(size) holds (ok is
    taken to hold for every larger size), found by bisection; None when ok(hi) fails."""
    if not ok(hi):
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if mid <= lo:
            break
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def heap_search(runner, variant, P, progress):
    """Smallest -X heapsize (bytes, to P['heap_step']) where connect, 100 publishes and 100
    receives succeed; bisection, then the answer is confirmed twice more."""
    slow = VARIANTS[variant]["client"] == "mqtt_as"
    cfg = {"scen": "heap", "n": P["heap_n"]}
    timeout = 6 if slow else 4
    step = P["heap_step"]

    def ok(size):
        t0 = time.monotonic()
        why = ""
        try:
            r = runner.run(variant, cfg, heapsize=size, timeout_s=timeout)
            good = bool(r.get("ok"))
        except RunError as e:
            good = False
            why = f" ({str(e)[-60:]})"
        dt = time.monotonic() - t0
        progress(f"heapsize {size}: {'ok' if good else 'fails'} in {dt:.1f} s{why}")
        return good

    hi = bisect_smallest(ok, P["heap_lo"], P["heap_hi"], step)
    if hi is None:
        raise RunError(f"fails even with a {P['heap_hi']}-byte heap")
    confirms = [hi]
    for _ in range(P["runs"] - 1):
        while not ok(hi):  # a flaky edge: move up until it holds
            hi += step
        confirms.append(hi)
    return {"heapsize": hi, "confirmed": confirms}


def parse_strace(path):
    calls = {}
    total = None
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5 or not parts[0][0].isdigit():
                continue
            name = parts[-1]
            n = int(parts[3])
            if name == "total":
                total = n
            else:
                calls[name] = n
    if total is None:
        total = sum(calls.values())
    return total, calls


def syscalls(runner, variant, P, progress):
    """System calls per QoS 0 publish and per received message: the difference between two
    runs of different length under strace -c, divided by the difference in messages."""
    slow = VARIANTS[variant]["client"] == "mqtt_as"
    out = {}
    path = os.path.join(runner.workdir, "strace.txt")
    for kind in ("pub", "recv"):
        n1, n2 = P["sys_recv_slow"] if (slow and kind == "recv") else P["sys_" + kind]
        per = []
        names = {}
        for _ in range(P["runs"]):
            got = []
            for n in (n1, n2):
                if kind == "pub":
                    cfg = {"scen": "pub", "qos": 0, "n": n, "cap_ms": 600_000, "warmup": 0}
                    flood = None
                else:
                    cfg = {"scen": "recv", "n": n, "cap_ms": 600_000}
                    flood = flood_segments(n)
                runner.run(variant, cfg, flood=flood, strace_out=path, timeout_s=120)
                got.append(parse_strace(path))
            (t1, c1), (t2, c2) = got
            per.append((t2 - t1) / (n2 - n1))
            for k in set(c1) | set(c2):
                d = (c2.get(k, 0) - c1.get(k, 0)) / (n2 - n1)
                if abs(d) >= 0.05:
                    names.setdefault(k, []).append(d)
        out[kind] = per
        out[kind + "_calls"] = {k: statistics.median(v) for k, v in names.items()}
        progress(f"{kind}: {statistics.median(per):.2f} syscalls/message")
    return out


# --- environment ---------------------------------------------------------------------------


_MP_VERSION = (
    "import sys; i = sys.implementation; v = i.version; "
    "print('v%d.%d.%d' % v[:3] + ('-' + v[3] if len(v) > 3 and v[3] else ''), "
    "sys.version.split('; ')[-1] + ',', 'unix port,', getattr(i, '_build', '?'), 'build')"
)


def machine_info(micropython, mpy_cross_bin, brk):
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            if m:
                cpu = m.group(1).strip()
    except OSError:
        pass
    mp = subprocess.run(
        [micropython, "-c", _MP_VERSION],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    mc = subprocess.run(
        [mpy_cross_bin, "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "micropython": mp,
        "mpy_cross": mc,
        "mosquitto": brk.version,
        "cpython": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


# --- main ----------------------------------------------------------------------------------


def plan(args, available):
    """[(scen, variant)] in run order, restricted to what is available and asked for."""
    out = []
    for scen, (_, variants) in SCENARIOS.items():
        if args.only and scen not in args.only:
            continue
        for v in variants:
            if VARIANTS[v]["client"] in available:
                out.append((scen, v))
    return out


TIMING = ("pub_q0", "pub_q1", "pub_q2", "recv", "recv_backlog", "rtt")


def interleave(jobs, runs):
    """[(scen, variant, run)]: the timing scenarios' runs round-robin over their variants
    (run 1 of each, then run 2 of each...), so a change in the machine's load during a
    scenario falls on every client alike; run is None for the other scenarios."""
    out = []
    i = 0
    while i < len(jobs):
        scen = jobs[i][0]
        group = [v for s, v in jobs if s == scen]
        if scen in TIMING:
            out += [(scen, v, r) for r in range(runs) for v in group]
        else:
            out += [(scen, v, None) for v in group]
        i += len(group)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny N, one run, mote and mote.aio alone, no download; docs untouched",
    )
    ap.add_argument(
        "--cache",
        default=competitors.DEFAULT_CACHE,
        help="competitors' cache folder (default %(default)s)",
    )
    ap.add_argument("--umqtt-src", help="checkout (or bare git mirror) of micropython-lib")
    ap.add_argument("--mqtt-as-src", help="checkout (or bare git mirror) of micropython-mqtt")
    ap.add_argument("--offline", action="store_true", help="never try to download")
    ap.add_argument(
        "--no-pin",
        action="store_true",
        help="leave CPU placement to the scheduler (default: broker and client on "
        "different cores, the same for every client)",
    )
    ap.add_argument(
        "--mote-lib",
        help="benchmark the mote package in DIR/mote instead of lib/mote (a prototype); "
        "the docs are then left alone unless --out is given",
    )
    ap.add_argument("--refresh", action="store_true", help="download again even if cached")
    ap.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run these scenarios")
    ap.add_argument(
        "--clients",
        nargs="+",
        choices=CLIENTS,
        help="run these clients only",
    )
    ap.add_argument("--runs", type=int, help="runs per scenario (default 3; smoke 1)")
    ap.add_argument("--out", help="markdown output (default docs/benchmarks.md; smoke: none)")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    ap.add_argument("--from-json", help="only rewrite the report from a --json file")
    args = ap.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            data = json.load(f)
        out = args.out or os.path.join(ROOT, "docs", "benchmarks.md")
        report.write(data, out, os.path.splitext(out)[0] + ".png", log)
        return 0
    P = dict(SMOKE if args.smoke else FULL)
    if args.runs:
        P["runs"] = P["runs_timing"] = max(1, args.runs)
    t_start = time.monotonic()

    micropython = tool("micropython")
    mpy_cross_bin = tool("mpy-cross")
    if not micropython or not mpy_cross_bin:
        log("micropython and mpy-cross are needed (make test sets up .venv with both)")
        return 2
    mosq = broker.find_mosquitto()
    if not mosq:
        log("mosquitto not found: install it (Debian/Ubuntu: apt-get install mosquitto)")
        return 2

    available = set()
    notes = {}
    mote_lib = os.path.abspath(args.mote_lib) if args.mote_lib else os.path.join(ROOT, "lib")
    mote_ok = os.path.exists(os.path.join(mote_lib, "mote", "client.py"))
    if mote_ok:
        available.add("mote")
        if os.path.exists(os.path.join(mote_lib, AIO_FILES[0])):
            available.add("mote.aio")
        else:
            notes["mote.aio"] = "lib/mote/aio.py does not exist yet"
    else:
        notes["mote"] = "lib/mote/client.py does not exist yet"
        log("mote: lib/mote/client.py does not exist yet; mote scenarios are skipped")
    comps = {}
    wanted = set(args.clients or CLIENTS)
    if args.smoke:
        wanted = {"mote", "mote.aio"}
    if wanted - {"mote", "mote.aio"}:
        log(f"competitors (cache {args.cache}):")
        comps = competitors.prepare(
            args.cache,
            micropython,
            args.umqtt_src,
            args.mqtt_as_src,
            online=not args.offline,
            refresh=args.refresh,
            log=log,
        )
        for name, info in comps.items():
            if "missing" in info:
                log(f"  {name}: MISSING: {info['missing']}")
            else:
                ver = info["version"]
                log(f"  {name}: {ver['source']} {ver['packages']}")
        if "path" in comps.get("umqtt", {}):
            available |= {"umqtt.simple", "umqtt.robust"}
        else:
            notes["umqtt"] = comps.get("umqtt", {}).get("missing", "not requested")
        if "path" in comps.get("mqtt_as", {}):
            available.add("mqtt_as")
        else:
            notes["mqtt_as"] = comps.get("mqtt_as", {}).get("missing", "not requested")
    available &= wanted
    if not available:
        log("nothing to benchmark")
        return 1

    strace_bin = shutil.which("strace")
    if not strace_bin and os.geteuid() == 0 and shutil.which("apt-get") and not args.smoke:
        log("strace missing: installing it with apt-get")
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "strace"], capture_output=True, timeout=300
        )
        strace_bin = shutil.which("strace")
    skip_sys = None
    if not strace_bin:
        skip_sys = "strace is not available: scenario 10 skipped"
        log(skip_sys)
    ss_bin = shutil.which("ss")
    skip_ss = None
    if not ss_bin:
        skip_ss = "ss (iproute2) is not available: no TCP segment counts, scenario 5 skipped"
        log(skip_ss)

    work = tempfile.mkdtemp(prefix="mote-bench-")
    brk = broker.Broker(work, mosq)
    results = {}
    errors = {}
    try:
        try:
            trees = Trees(
                os.path.join(work, "build"),
                mpy_cross_bin,
                comps,
                bool({"mote", "mote.aio"} & available),
                mote_lib=mote_lib,
            )
            brk.start()
        except (RunError, RuntimeError, OSError) as e:
            log(f"cannot start the benchmark: {e}")
            return 2
        cpus = placement(not args.no_pin)
        if cpus:
            os.sched_setaffinity(0, cpus[0])
            os.sched_setaffinity(brk.proc.pid, cpus[0])
        info = machine_info(micropython, mpy_cross_bin, brk)
        info["placement"] = (
            "broker on CPU %s, client on CPU %s" % (min(cpus[0]), min(cpus[1]))
            if cpus
            else "scheduler's choice"
        )
        log(f"mosquitto {brk.version} on 127.0.0.1:{brk.port}; {info['micropython']}")
        runner = Runner(
            micropython, trees, brk, work, strace_bin, ss_bin, cpus[1] if cpus else None
        )
        jobs = interleave(plan(args, available), P["runs_timing"])
        for i, (scen, variant, r) in enumerate(jobs, 1):
            head = f"[{i}/{len(jobs)} {time.monotonic() - t_start:5.0f}s] {scen} {variant}"
            slot = results.setdefault(scen, {})
            if variant in errors.get(scen, {}):
                continue  # an earlier run of this one failed
            try:
                if scen == "recv_backlog" and skip_ss:
                    errors.setdefault(scen, {})[variant] = skip_ss
                    continue
                if scen == "syscalls":
                    if skip_sys:
                        errors.setdefault(scen, {})[variant] = skip_sys
                        continue
                    slot[variant] = syscalls(
                        runner, variant, P, lambda m, h=head: log(f"{h}: {m}")
                    )
                elif scen == "heap":
                    slot[variant] = heap_search(
                        runner, variant, P, lambda m, h=head: log(f"{h}: {m}")
                    )
                    log(f"{head}: minimum heap {slot[variant]['heapsize']} bytes")
                elif scen == "ram":
                    runs = {"py": [], "mpy": []}
                    for mode in ("py", "mpy"):
                        for _ in range(P["runs"]):
                            runs[mode].append(one_run(runner, scen, variant, P, mode))
                    slot[variant] = runs
                    log(
                        f"{head}: import .py {runs['py'][0]['import']} B, .mpy "
                        f"{runs['mpy'][0]['import']} B, after connect "
                        f"{runs['mpy'][0]['connect']} B"
                    )
                elif r is not None:
                    res = one_run(runner, scen, variant, P)
                    slot.setdefault(variant, []).append(res)
                    n_runs = P["runs_timing"]
                    log(f"{head} run {r + 1}/{n_runs}: {report.brief(scen, res)}")
                else:
                    runs = []
                    for k in range(P["runs"]):
                        res = one_run(runner, scen, variant, P)
                        runs.append(res)
                        log(f"{head} run {k + 1}/{P['runs']}: {report.brief(scen, res)}")
                    slot[variant] = runs
            except RunError as e:
                slot.pop(variant, None)
                errors.setdefault(scen, {})[variant] = str(e)
                log(f"{head}: FAILED: {e}")
    finally:
        brk.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - t_start
    data = {
        "machine": info,
        "params": P,
        "smoke": args.smoke,
        "versions": {k: v.get("version") for k, v in comps.items() if "path" in v},
        "missing": notes,
        "results": results,
        "errors": errors,
        "mpy_sizes": trees.sizes,
        "segments": bool(ss_bin),
        "elapsed_s": round(elapsed),
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    out = args.out or (None if args.smoke else os.path.join(ROOT, "docs", "benchmarks.md"))
    missing = sorted(notes)
    if out and not args.out and (missing or args.mote_lib):
        why = "mote from " + mote_lib if args.mote_lib else "missing " + ", ".join(missing)
        log("NOT rewriting docs/benchmarks.md: " + why + " (see above)")
        out = os.path.join(args.cache, "benchmarks.md")
    if out:
        png = os.path.splitext(out)[0] + ".png"
        report.write(data, out, png, log)
    else:
        report.summary(data, log)
    log(f"done in {elapsed:.0f} s")
    skipped = {"syscalls": skip_sys, "recv_backlog": skip_ss}
    failed = sum(len(v) for k, v in errors.items() if not skipped.get(k))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
