# The node across the ticks wrap, for real: the 32-bit VM (an ESP32's ticks period of
# 2**30 ms) started 1.5 s before the wrap (MICROPY_TICKS_LEAD_MS) runs the firmware's main
# loop on the host board's simulated hardware, with the real clock and sleep, for about
# 4.5 s. Its log lines, readings and watchdog feeds must go on as if nothing happened.
import json
import os
import re
import subprocess

import mpclient

from support import missing_tool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LEAD_MS = 1500
RUN_MS = 4500

# Runs in the VM. The loop's sleep hook stops it after RUN_MS and logs a line every pass,
# so the log prefix is sampled densely across the wrap.
SCRIPT = """
import sys, json
sys.path[:0] = [%(fw)r, %(lib)r, %(tests)r, %(board)r]
import time
from mote.compat import ticks_ms, ticks_diff, sleep_ms
import test_fw_fakes as fx
import hal, board
from app import config, node as node_mod
from app.log import log

raw = {"broker": {"host": "10.0.0.2"}, "interval_s": 1, "watchdog_s": 30,
       "ntp": {"host": None}, "sim": {"rtc_file": %(rtc)r}}
cfg, problems = config.validate(raw)
hw = hal.build(board.BOARD, cfg)
client = fx.FakeClient()
sent = []
publish = client.publish

def timed_publish(topic, msg, retain=False, qos=0):
    if bytes(topic).endswith(b"/telemetry"):
        sent.append((ticks_ms(), json.loads(msg)))
    return publish(topic, msg, retain, qos)

client.publish = timed_publish
feeds = []
wdt_feed = hw.system.wdt_feed

def feed():
    feeds.append(ticks_ms())
    wdt_feed()

hw.system.wdt_feed = feed
t_start = ticks_ms()

def sleep(ms):
    log("pass")
    if ticks_diff(ticks_ms(), t_start) >= %(run_ms)d:
        raise fx.StopLoop()
    sleep_ms(ms)

n = node_mod.Node(cfg, raw, problems, hw, make_client=lambda c, cid: client, sleep=sleep)
try:
    n.run()
except fx.StopLoop:
    pass
t_end = ticks_ms()
gaps = [ticks_diff(sent[i + 1][0], sent[i][0]) for i in range(len(sent) - 1)]
feed_gaps = [ticks_diff(feeds[i + 1], feeds[i]) for i in range(len(feeds) - 1)]
print("RESULT", json.dumps({
    "start": t_start, "end": t_end, "period": time.ticks_add(0, -1) + 1,
    "uptimes": [r["uptime_s"] for t, r in sent], "seqs": [r["seq"] for t, r in sent],
    "gaps": gaps, "feeds": len(feeds), "max_feed_gap": max(feed_gaps),
    "loop_errors": n.loop_errors, "node_uptime": n.uptime_s(),
}))
"""


def _run(tmp_path):
    mp = mpclient.micropython32_path()
    if not mp:
        missing_tool(mpclient.missing_reason("micropython32"))
    script = SCRIPT % {
        "fw": os.path.join(ROOT, "firmware"),
        "lib": os.path.join(ROOT, "lib"),
        "tests": HERE,
        "board": os.path.join(ROOT, "boards", "host"),
        "rtc": str(tmp_path / "rtc.bin"),
        "run_ms": RUN_MS,
    }
    env = dict(os.environ, MICROPY_TICKS_LEAD_MS=str(LEAD_MS))
    p = subprocess.run(
        [mp, "-X", "heapsize=2M", "-c", script],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    lines = p.stdout.splitlines()
    result = [json.loads(line[7:]) for line in lines if line.startswith("RESULT ")]
    assert result, p.stdout[-2000:]
    return lines, result[0]


def test_node_runs_across_the_ticks_wrap_on_the_32_bit_vm(tmp_path):
    lines, r = _run(tmp_path)
    assert r["period"] == 1 << 30  # an ESP32's ticks period
    assert r["end"] < r["start"], "the run did not cross the wrap"  # ticks went round
    # log prefixes: non-negative and never going back, before, at and after the wrap
    stamps = []
    for line in lines:
        m = re.match(r"\[(\d+)\.(\d{3})\] mote: ", line)
        if m:
            stamps.append(int(m.group(1)) * 1000 + int(m.group(2)))
        else:
            assert not line.startswith("[-"), line
    assert len(stamps) > 50
    assert all(b >= a for a, b in zip(stamps, stamps[1:], strict=False)), stamps
    assert stamps[-1] >= RUN_MS - 100
    # telemetry every second, at uptime 0, 1, 2, ... with seq 1, 2, 3, ...
    assert r["uptimes"] == list(range(len(r["uptimes"]))) and len(r["uptimes"]) >= 4
    assert r["seqs"] == list(range(1, len(r["seqs"]) + 1))
    assert all(900 <= g <= 1100 for g in r["gaps"]), r["gaps"]
    # the watchdog is fed on every pass (50 ms apart), the wrap included
    assert r["feeds"] > 50 and r["max_feed_gap"] < 500, r
    assert r["loop_errors"] == 0 and r["node_uptime"] >= 4
