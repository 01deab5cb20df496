# The sensor-node firmware end to end (CPython drives, the node runs on the MicroPython
# unix port with the host board): a real mosquitto, a paho-mqtt peer, short intervals.
import json
import os
import signal
import subprocess
import threading
import time

import pytest

paho = pytest.importorskip("paho.mqtt.client")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEAPSIZE = "256K"
CONTRACT_FIELDS = ("temperature_c", "humidity_pct", "pressure_hpa", "rssi", "uptime_s", "seq")


class Node:
    """The firmware in a MicroPython process; its console lines are collected."""

    def __init__(self, mp, workdir, cfg):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.config_path = os.path.join(workdir, "config.json")
        cfg.setdefault("sim", {}).setdefault("rtc_file", os.path.join(workdir, "rtc.bin"))
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        path = ":".join(os.path.join(ROOT, p) for p in ("firmware", "lib", "boards/host"))
        env = dict(os.environ, MICROPYPATH=path + ":.frozen")  # .frozen: the port's ssl module
        self.lines = []
        self.proc = subprocess.Popen(
            [
                mp,
                "-X",
                "heapsize=" + HEAPSIZE,
                os.path.join(ROOT, "firmware", "main.py"),
                self.config_path,
            ],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def log(self):
        return "\n".join(self.lines)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Peer:
    """A paho-mqtt client collecting (topic, payload, retain) in arrival order."""

    def __init__(self, port, topics, client_id=None, clean=True):
        self.msgs = []
        self.cv = threading.Condition()
        self.subscribed = threading.Event()
        self.topics = topics
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id or "peer-%d-%d" % (os.getpid(), id(self)),
            clean_session=clean,
        )
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.reconnect_delay_set(0.2, 0.5)
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        assert self.subscribed.wait(5), "peer: no SUBACK"

    def _on_connect(self, c, userdata, flags, reason, props=None):
        c.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, c, userdata, msg):
        with self.cv:
            self.msgs.append((msg.topic, bytes(msg.payload), msg.retain, time.monotonic()))
            self.cv.notify_all()

    def send(self, topic, payload):
        self.c.publish(topic, payload, qos=1)

    def wait(self, pred, timeout_s=5.0):
        """Wait until pred(msgs) is truthy; returns its value, or fails the test."""
        deadline = time.monotonic() + timeout_s
        with self.cv:
            while True:
                v = pred(self.msgs)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out; got %r" % [m[:2] for m in self.msgs][-12:])
                self.cv.wait(left)

    def on(self, suffix):
        return [m for m in self.msgs if m[0].endswith(suffix)]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def telemetry(peer):
    return [json.loads(m[1]) for m in peer.on("/telemetry")]


def unique_in_order(readings):
    """seq values by first arrival (a QoS 1 resend after a broker restart may repeat)."""
    seen, out = set(), []
    for r in readings:
        if r["seq"] not in seen:
            seen.add(r["seq"])
            out.append(r["seq"])
    return out


@pytest.fixture
def run_node(micropython_bin, tmp_path):
    made = []

    def make(port, dev, **cfg):
        base = {
            "broker": {"host": "127.0.0.1", "port": port, "keepalive_s": 10},
            "device_id": dev,
            "interval_s": 1,
            "watchdog_s": 30,
            "backoff_max_s": 2,
        }
        base.update(cfg)
        n = Node(micropython_bin, str(tmp_path / ("node%d" % len(made))), base)
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop()
        if n.proc.returncode not in (0, -2, -9, None):
            print(n.log())


@pytest.fixture
def peers():
    made = []

    def make(port, topics, **kw):
        p = Peer(port, topics, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def _reply(peer, name, cid, timeout_s=5.0):
    def find(msgs):
        for m in msgs:
            if m[0].endswith("/reply/" + name):
                r = json.loads(m[1])
                if r.get("id") == cid:
                    return r
        return None

    return peer.wait(find, timeout_s)


def test_telemetry_arrives_at_the_interval_with_the_contract_fields(broker, run_node, peers):
    peer = peers(broker.port, ["mote/e2e-tele/#", "homeassistant/+/mote_e2e_tele/#"])
    node = run_node(broker.port, "e2e-tele")
    peer.wait(lambda m: len(peer.on("/telemetry")) >= 4, 8)
    status = peer.on("/status")
    assert status[0][1] == b"online"
    t = telemetry(peer)
    assert [r["seq"] for r in t[:4]] == [1, 2, 3, 4]
    for r in t:
        for k in CONTRACT_FIELDS:
            assert k in r, (k, r)
        assert "error" not in r
    times = [m[3] for m in peer.on("/telemetry")[:4]]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert 0.6 < sum(gaps) / len(gaps) < 1.6, gaps  # interval_s is 1
    disc = [m for m in peer.msgs if m[0].startswith("homeassistant/")]
    assert len(disc) == 6  # temperature, humidity, pressure, rssi, uptime; the LED switch
    assert all(json.loads(m[1])["dev"]["ids"] == ["mote_e2e_tele"] for m in disc)
    assert {m[0].split("/")[1] for m in disc} == {"sensor", "switch"}
    late = peers(broker.port, ["homeassistant/+/mote_e2e_tele/#"])  # retained: still there
    late.wait(lambda m: len(m) >= 6 and all(x[2] for x in m))
    assert node.alive()


def test_every_command_is_answered_and_bad_ones_do_not_stop_the_node(broker, run_node, peers):
    dev = "e2e-cmd"
    peer = peers(broker.port, ["mote/%s/#" % dev])
    node = run_node(broker.port, dev, interval_s=30)
    peer.wait(lambda m: peer.on("/status"), 5)

    def cmd(name, arg=None, cid=None, raw=None):
        """Send a command; its reply (matched by id, or the next one for a raw payload)."""
        cmd.n += 1
        cid = cid or cmd.n
        before = len(peer.on("/reply/" + name))
        payload = (
            raw
            if raw is not None
            else json.dumps({"id": cid, "arg": arg} if arg is not None else {"id": cid})
        )
        peer.send("mote/%s/cmd/%s" % (dev, name), payload)
        if raw is None:
            return _reply(peer, name, cid)
        peer.wait(lambda m: len(peer.on("/reply/" + name)) > before)
        return json.loads(peer.on("/reply/" + name)[before][1])

    cmd.n = 100
    assert cmd("ping")["pong"] is True
    r = cmd("read")
    assert r["ok"] and r["seq"] == 2
    peer.wait(lambda m: len(peer.on("/telemetry")) >= 2)
    assert cmd("interval", 15) == {"ok": True, "interval_s": 15, "id": cmd.n}
    assert cmd("led", "on")["led"] == "on"
    assert cmd("led", "toggle")["led"] == "off"
    info = cmd("info")
    assert info["ok"] and info["board"] == "host" and info["version"] and info["mem_free"] > 0
    assert info["uptime_s"] >= 0 and info["device_id"] == dev
    r = cmd("config", {"interval_s": 20})
    assert r["ok"] and r["changed"] == ["interval_s"]
    with open(node.config_path) as f:
        assert json.load(f)["interval_s"] == 20
    # bad ones
    assert cmd("led", "blink")["ok"] is False
    assert cmd("interval", "soon")["ok"] is False
    assert cmd("config", {"nope": 1})["ok"] is False
    assert cmd("selfdestruct")["error"] == "unknown command: selfdestruct"
    r = cmd("ping", raw=b"{not json")
    assert r["ok"] is False
    r = cmd("led", raw=b"\xff\xfe")
    assert r["ok"] is False
    # a redelivered command with the same id is answered again, not run again
    first = cmd("led", "toggle", cid="dup-1")
    again_n = len(peer.on("/reply/led"))
    peer.send("mote/%s/cmd/led" % dev, json.dumps({"id": "dup-1", "arg": "toggle"}))
    peer.wait(lambda m: len(peer.on("/reply/led")) > again_n)
    assert json.loads(peer.on("/reply/led")[-1][1]) == first
    assert cmd("led")["led"] == "on"  # toggled once
    assert cmd("ping")["ok"] is True and node.alive()
    # reboot: answered, offline, then online again with seq continuing
    n_status = len(peer.on("/status"))
    assert cmd("reboot")["rebooting"] is True
    peer.wait(
        lambda m: [s[1] for s in peer.on("/status")[n_status:]][:2] == [b"offline", b"online"]
    )
    r = cmd("read")
    # seq 2 before the reboot; after it the read may run before the first reading (the
    # command can arrive while the node announces itself): 3 or more, never from 1 again
    assert r["seq"] >= 3 and node.alive()


def test_broker_restart_queued_readings_arrive_in_order(fresh_broker, run_node, peers):
    dev = "e2e-restart"
    peer = peers(
        fresh_broker.port, ["mote/%s/telemetry" % dev], client_id="e2e-restart-peer", clean=False
    )
    node = run_node(fresh_broker.port, dev)
    peer.wait(lambda m: len(m) >= 2, 6)
    fresh_broker.stop()
    time.sleep(3.0)
    fresh_broker.start()
    peer.wait(lambda m: any("age_s" in json.loads(x[1]) for x in m), 10)
    peer.wait(lambda m: len(unique_in_order(telemetry(peer))) >= 8, 8)
    seqs = unique_in_order(telemetry(peer))
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    late = [r for r in telemetry(peer) if "age_s" in r]
    assert len(late) >= 2 and all(r["age_s"] >= 1 for r in late)
    assert "broker connection lost" in node.log() or "mqtt" in node.log()
    assert node.alive()


def test_killing_the_node_delivers_offline(broker, run_node, peers):
    dev = "e2e-kill"
    peer = peers(broker.port, ["mote/%s/status" % dev])
    node = run_node(
        broker.port, dev, broker={"host": "127.0.0.1", "port": broker.port, "keepalive_s": 5}
    )
    peer.wait(lambda m: m and m[-1][1] == b"online", 5)
    node.proc.kill()
    node.proc.wait(5)
    peer.wait(lambda m: m[-1][1] == b"offline", 5)


def test_a_wifi_outage_is_survived_and_readings_are_kept(broker, run_node, peers):
    dev = "e2e-wifi"
    peer = peers(broker.port, ["mote/%s/telemetry" % dev])
    node = run_node(broker.port, dev, sim={"wifi_outages": [[1.5, 3]]}, wifi={"timeout_s": 1})
    peer.wait(lambda m: len(unique_in_order(telemetry(peer))) >= 7, 10)
    seqs = unique_in_order(telemetry(peer))
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    late = [r for r in telemetry(peer) if "age_s" in r]
    assert len(late) >= 2, telemetry(peer)
    assert "wifi down" in node.log()
    assert node.alive()


def test_deep_sleep_cycle_on_the_host_twin(broker, run_node, peers):
    dev = "e2e-deep"
    peer = peers(broker.port, ["mote/%s/telemetry" % dev])
    node = run_node(broker.port, dev, sleep="deep", awake_s=2)
    peer.wait(lambda m: len(m) >= 3, 10)
    t = telemetry(peer)
    assert [r["seq"] for r in t[:3]] == [1, 2, 3]
    assert t[1]["uptime_s"] > t[0]["uptime_s"]  # node time goes on across sleep
    assert node.log().count("deep sleep") >= 2
    assert node.alive()


def test_deep_sleep_a_lost_ack_is_completed_after_the_next_wake(
    broker, proxy_factory, run_node, peers
):
    # Wake 2's telemetry reaches the broker but its PUBACK is cut off and reconnecting is
    # refused until the node sleeps: the unacknowledged message goes to RTC memory with
    # the MQTT session, and wake 3 resends it (DUP) and completes it.
    import faultproxy

    dev = "e2e-ackloss"
    proxy = proxy_factory(broker.port)
    peer = peers(broker.port, ["mote/%s/telemetry" % dev])
    node = run_node(proxy.port, dev, sleep="deep", awake_s=1, interval_s=2)

    def wait_sleeps(n):
        deadline = time.monotonic() + 8
        while node.log().count("mote: deep sleep") < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert node.log().count("mote: deep sleep") >= n, node.log()

    wait_sleeps(1)
    # The reconnect after the cut may beat refuse(): then that wake completes normally
    # and the next one tries again.
    attempt = 0
    while True:
        asleep = node.log().count("mote: deep sleep")
        seen = proxy.connections
        # CONNACK (4 bytes), SUBACK (5), the PUBACK for "online" (4), then one byte of
        # the reading's PUBACK, and the connection is cut.
        proxy.cut_after(14, faultproxy.DOWN)
        assert proxy.wait_connections(seen + 1, 5)
        proxy.refuse(True)
        wait_sleeps(asleep + 1)
        proxy.heal()
        if "kept for the next wake" in node.log() or attempt == 2:
            break
        attempt += 1
    assert "kept for the next wake" in node.log(), node.log()
    peer.wait(lambda m: 3 + attempt in unique_in_order(telemetry(peer)), 10)
    seqs = unique_in_order(telemetry(peer))
    assert seqs[: 3 + attempt] == list(range(1, 4 + attempt)), seqs
    resent = [
        line
        for line in broker.log().splitlines()
        if "Received PUBLISH from mote-%s (d1, q1" % dev in line and "/telemetry" in line
    ]
    assert resent, broker.log_tail(30)


def test_broker_login_works_and_the_password_is_never_shown(broker, run_node, peers):
    import broker as broker_mod

    dev = "e2e-auth"
    peer = peers(broker.port, ["mote/%s/#" % dev])
    node = run_node(
        broker.port,
        dev,
        broker={
            "host": "127.0.0.1",
            "port": broker.auth_port,
            "user": broker_mod.USER,
            "password": broker_mod.PASSWORD,
        },
        wifi={"ssid": "home", "password": "wifi-pass-123"},
    )
    peer.wait(lambda m: peer.on("/telemetry"), 5)
    peer.send("mote/%s/cmd/config" % dev, json.dumps({"id": 1}))
    r = _reply(peer, "config", 1)
    assert r["config"]["broker"]["password"] == "***" and r["config"]["wifi"]["password"] == "***"
    for m in peer.msgs:
        assert broker_mod.PASSWORD.encode() not in m[1] and b"wifi-pass-123" not in m[1]
    assert broker_mod.PASSWORD not in node.log() and "wifi-pass-123" not in node.log()
