# The node's safety rules end to end (issue 11): the node on the MicroPython unix port
# against mosquitto, a paho-mqtt peer as the other broker user. Retained commands, signed
# commands, mutual TLS, a remote broker change that does not connect, oversize commands,
# a command flood, and a fatal config's exit status.
import hashlib
import hmac
import json
import os
import subprocess
import time

# The fixtures (and helpers) of the firmware's end-to-end tests: pytest finds run_node and
# peers by their names here, so the test arguments "redefine" them (F811).
# ruff: noqa: F811
from test_fw_e2e_cpython import ROOT, _reply, peers, run_node  # noqa: F401

KEY = "e2e-signing-key-0123"


def _sign(topic, body, key=KEY):
    """The sender's half of app.sign: {"body", "sig"} with HMAC-SHA256(key, topic\\nbody)."""
    text = json.dumps(body)
    sig = hmac.new(key.encode(), topic.encode() + b"\n" + text.encode(), hashlib.sha256)
    return json.dumps({"body": text, "sig": sig.hexdigest()})


def _wait_log(node, text, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while text not in node.log():
        assert time.monotonic() < deadline, node.log()[-3000:]
        time.sleep(0.02)


def test_a_retained_reboot_does_not_reboot_the_node_nor_does_clearing_it(broker, run_node, peers):
    dev = "e2e-retained"
    peer = peers(broker.port, ["mote/%s/#" % dev])
    # left on the broker by someone: the node gets it at every subscribe
    peer.c.publish("mote/%s/cmd/reboot" % dev, json.dumps({"id": "r1"}), qos=1, retain=True)
    node = run_node(broker.port, dev, interval_s=30)
    r = _reply(peer, "reboot", "r1")
    assert r == {"ok": False, "error": "retained command refused", "id": "r1"}
    peer.c.publish("mote/%s/cmd/reboot" % dev, b"", qos=1, retain=True)  # mosquitto_pub -r -n
    peer.wait(lambda m: len(peer.on("/reply/reboot")) >= 2)
    assert json.loads(peer.on("/reply/reboot")[1][1]) == {
        "ok": False,
        "error": "empty payload: not a command",
    }
    peer.send("mote/%s/cmd/ping" % dev, json.dumps({"id": 2}))
    assert _reply(peer, "ping", 2)["ok"] is True
    assert "rebooting" not in node.log() and node.log().count("connected; status online") == 1
    assert [m[1] for m in peer.on("/status")] == [b"online"]
    assert node.alive()


def test_signed_commands_end_to_end(broker, run_node, peers):
    dev = "e2e-signed"
    topic = "mote/%s/cmd/" % dev
    peer = peers(broker.port, ["mote/%s/#" % dev])
    node = run_node(broker.port, dev, interval_s=30, cmd_key=KEY)
    peer.wait(lambda m: peer.on("/status"))
    t = int(time.time() * 1000)
    peer.send(topic + "led", _sign(topic + "led", {"id": "s1", "t": t, "arg": "on"}))
    assert _reply(peer, "led", "s1") == {"ok": True, "led": "on", "id": "s1"}
    peer.send(topic + "led", json.dumps({"id": "u1", "arg": "off"}))
    assert _reply(peer, "led", "u1") == {"ok": False, "error": "unsigned command", "id": "u1"}
    peer.send(
        topic + "led", _sign(topic + "led", {"id": "s2", "t": t + 1, "arg": "off"}, "x" * 16)
    )
    assert _reply(peer, "led", "s2")["error"] == "bad signature"
    # a captured command sent again under a new id would need a new signature; the same
    # message again is answered as a duplicate; an old one with a new id is stale
    peer.send(topic + "led", _sign(topic + "led", {"id": "s3", "t": t, "arg": "off"}))
    assert _reply(peer, "led", "s3")["error"] == "replayed or stale command"
    peer.send(topic + "led", _sign(topic + "led", {"id": "s4", "t": t - 10**6, "arg": "off"}))
    assert _reply(peer, "led", "s4")["error"] == "replayed or stale command"
    peer.send(topic + "ping", _sign(topic + "ping", {"id": "s5", "t": t + 2}))
    assert _reply(peer, "ping", "s5")["pong"] is True
    state = [m[1] for m in peer.msgs if m[0] == "mote/%s/led" % dev]
    assert state == [b"off", b"on"]  # at connect, then s1; the refused ones changed nothing
    assert KEY not in node.log() and node.alive()


def test_the_node_connects_with_a_client_certificate(broker, run_node, peers):
    dev = "e2e-mtls"
    c = broker.certs
    peer = peers(broker.port, ["mote/%s/telemetry" % dev])
    # DER files, as on a board (app.config: broker.ca, broker.cert, broker.key)
    tls = {"host": "127.0.0.1", "tls": True, "ca": c.ca_cert_der, "keepalive_s": 10}
    cert = dict(tls, port=broker.mtls_port, cert=c.client_cert_der, key=c.client_key_der)
    node = run_node(broker.mtls_port, dev, broker=cert)
    try:
        peer.wait(lambda m: len(m) >= 1, 10)
    except AssertionError:
        raise AssertionError(node.log()[-3000:])
    # without the certificate the same listener refuses the node
    other = run_node(broker.mtls_port, dev + "-nocert", broker=dict(tls, port=broker.mtls_port))
    _wait_log(other, "mqtt connect failed", 10)
    assert "connected; status online" not in other.log()
    assert node.alive()


def test_a_remote_broker_change_that_does_not_connect_is_rolled_back(broker, run_node, peers):
    import broker as broker_mod

    dev = "e2e-rollback"
    peer = peers(broker.port, ["mote/%s/#" % dev])
    node = run_node(
        broker.port, dev, interval_s=30, backoff_max_s=1, remote_config=["broker.port", "qos"]
    )
    peer.wait(lambda m: peer.on("/status"))
    _wait_log(node, "kept as")  # first connect: config.last-good.json written
    good = os.path.join(node.dir, "config.last-good.json")
    with open(good) as f:
        assert json.load(f)["broker"]["port"] == broker.port
    bad_port = broker_mod.free_port()
    peer.send("mote/%s/cmd/config" % dev, json.dumps({"id": 1, "arg": {"broker.port": bad_port}}))
    r = _reply(peer, "config", 1)
    assert r["ok"] and r["changed"] == ["broker.port"] and r["reboot_required"]
    peer.send("mote/%s/cmd/reboot" % dev, json.dumps({"id": 2}))
    _reply(peer, "reboot", 2)
    # five refused connects (1 s apart at most), back to the last good config, reset
    err = peer.wait(lambda m: [x for x in peer.on("/error") if x[1]], 20)
    report = json.loads(err[-1][1])["error"]
    assert "config.rejected.json: did not connect" in report, report
    assert "no connection after 5 attempts" in node.log()
    with open(node.config_path) as f:
        assert json.load(f)["broker"]["port"] == broker.port
    with open(os.path.join(node.dir, "config.rejected.json")) as f:
        assert json.load(f)["broker"]["port"] == bad_port
    peer.send("mote/%s/cmd/ping" % dev, json.dumps({"id": 3}))
    assert _reply(peer, "ping", 3)["ok"] and node.alive()
    # a setting that is not listed is refused and never saved
    peer.send("mote/%s/cmd/config" % dev, json.dumps({"id": 4, "arg": {"broker.host": "x"}}))
    assert _reply(peer, "config", 4)["error"] == "not remotely configurable: broker.host"


def test_a_wrong_security_setting_falls_back_to_the_last_good_config_and_says_why(
    broker, run_node, peers, tmp_path
):
    dev = "e2e-failclosed"
    peer = peers(broker.port, ["mote/%s/#" % dev])
    good = {"broker": {"host": "127.0.0.1", "port": broker.port}, "device_id": dev}
    os.makedirs(tmp_path / "node0")
    (tmp_path / "node0" / "config.last-good.json").write_text(json.dumps(good))
    # "tls": "yes" used to mean plain text with a warning; now it is never used
    node = run_node(broker.port, dev, broker={"host": "127.0.0.1", "port": 1, "tls": "yes"})
    err = peer.wait(lambda m: [x for x in peer.on("/error") if x[1]])
    report = json.loads(err[0][1])["error"]
    assert report.startswith("broker.tls: expected bool: not connecting"), report
    assert "config.last-good.json" in report
    assert "config error: broker.tls: expected bool" in node.log() and node.alive()


def test_an_oversize_command_is_reported(broker, run_node, peers):
    dev = "e2e-oversize"
    peer = peers(broker.port, ["mote/%s/#" % dev])
    node = run_node(broker.port, dev, interval_s=30)
    peer.wait(lambda m: peer.on("/status"))
    peer.send("mote/%s/cmd/config" % dev, json.dumps({"id": 1, "arg": "x" * 100_000}))
    err = peer.wait(lambda m: [x for x in peer.on("/error") if x[1]])
    assert json.loads(err[0][1])["error"].startswith("command dropped: 100")
    peer.send("mote/%s/cmd/ping" % dev, json.dumps({"id": 2}))
    assert _reply(peer, "ping", 2)["ok"] and node.alive()


def test_a_command_flood_then_reboot_ends_in_no_memory_error(broker, run_node, peers):
    dev = "e2e-flood"
    peer = peers(broker.port, ["mote/%s/status" % dev, "mote/%s/reply/reboot" % dev])
    # as `make run` (tools/run_host.py) runs it: 256K heap, an 8 KB offline ring, 5 s
    node = run_node(broker.port, dev, interval_s=5, offline_bytes=8192)
    peer.wait(lambda m: peer.on("/status"))
    names = ("ping", "read", "info", "led", "config", "nope")
    for i in range(5000):
        name = names[i % len(names)]
        peer.c.publish("mote/%s/cmd/%s" % (dev, name), json.dumps({"id": i}), qos=1)
    # more than 8 commands in one poll are dropped (and counted): wait for the flood to end
    n = -1
    while n != len(node.lines):
        n = len(node.lines)
        time.sleep(0.5)
    peer.send("mote/%s/cmd/reboot" % dev, json.dumps({"id": "boot"}))
    try:
        peer.wait(lambda m: [s[1] for s in peer.on("/status")][-2:] == [b"offline", b"online"], 20)
    except AssertionError:
        raise AssertionError(node.log()[-3000:])
    assert "MemoryError" not in node.log() and node.alive()


def test_a_fatal_config_exits_non_zero(micropython_bin, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"broker": {"host": "127.0.0.1", "tls": "yes"}}))
    path = ":".join(os.path.join(ROOT, p) for p in ("firmware", "lib", "boards/host"))
    p = subprocess.run(
        [micropython_bin, os.path.join(ROOT, "firmware", "main.py"), str(cfg)],
        cwd=str(tmp_path),
        env=dict(os.environ, MICROPYPATH=path),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert p.returncode == 1, p.stdout + p.stderr
    assert "broker.tls: expected bool" in p.stdout
