# hal.sim: the host board's twins: scripted WiFi outages, a seeded sensor with daily drift
# and injectable faults, the LED, and the system (reset, deep sleep, watchdog, RTC file).
import sys

import hal
from hal import DeepSleep, NetworkError, Reboot, SensorError
from hal.sim import SimLED, SimNetwork, SimSensor, SimSystem
from support import StepClock, raises


def _net(outages):
    clk = StepClock()
    n = SimNetwork({"sim": {"wifi_outages": outages}})
    n.set_clock(clk.now_ms, clk.sleep)
    return n, clk


def test_network_is_up_except_during_scripted_outages():
    n, clk = _net([[10, 5], [30, 1]])
    seen = []
    for _ in range(40):
        seen.append(n.isconnected())
        clk.advance(1000)
    assert seen.index(False) == 10 and seen[10:15] == [False] * 5 and seen[15]
    assert seen[30] is False and seen[31] and seen.count(False) == 6
    assert n.rssi() == -61 and n.ip() == "127.0.0.1"


def test_up_waits_out_a_short_outage_and_fails_on_a_long_one():
    n, clk = _net([[0, 3], [10, 60]])
    n.up(timeout_ms=5000)
    assert n.isconnected() and clk.sleeps == [1000, 1000, 1000]  # in 1 s steps, as a board
    clk.advance(7000)
    assert not n.isconnected() and n.rssi() is None and n.ip() is None
    feeds = []
    e = raises(NetworkError, n.up, 5000, lambda: feeds.append(1))
    assert isinstance(e, OSError) and "outage" in e.args[1]
    assert len(feeds) == 5 and max(clk.sleeps) <= 1000  # the watchdog fed every second
    assert not n.check() and n.status_name() == "sim outage"


def test_down_until_up():
    n, clk = _net([])
    n.down()
    assert not n.isconnected()
    n.up()
    assert n.isconnected()


def _sensor(cfg=None):
    clk = StepClock()
    s = SimSensor({"sim": cfg or {}})
    s.set_clock(clk.now_ms)
    return s, clk


def test_sensor_is_reproducible_for_a_seed():
    a, ca = _sensor({"seed": 7})
    b, cb = _sensor({"seed": 7})
    c, cc = _sensor({"seed": 8})
    ra = [a.read() for _ in range(5)]
    assert ra == [b.read() for _ in range(5)]
    assert ra != [c.read() for _ in range(5)]


def test_sensor_values_are_plausible_and_follow_the_day():
    s, clk = _sensor({"start_hour": 0})
    by_hour = []
    for _ in range(24):
        r = s.read()
        assert 10 < r["temperature_c"] < 30 and 0 <= r["humidity_pct"] <= 100
        assert 990 < r["pressure_hpa"] < 1030
        by_hour.append(r["temperature_c"])
        clk.advance(3600 * 1000)
    assert by_hour[17] - by_hour[5] > 5  # warm afternoon, cold early morning
    assert by_hour.index(max(by_hour)) in (16, 17, 18)


def test_injected_faults():
    s, clk = _sensor()
    first = s.read()
    s.inject("bus")
    e = raises(SensorError, s.read)
    assert e.args[0] == "sim: bus error"
    s.inject("crc", 2)
    raises(SensorError, s.read)
    raises(SensorError, s.read)
    clk.advance(3600 * 1000)
    s.inject("stuck", -1)
    assert s.read() == s.read() == first
    s.clear()
    assert s.read() != first
    raises(ValueError, s.inject, "smoke")


def test_timed_faults_from_config():
    s, clk = _sensor({"faults": [[60, 30, "bus"]]})
    s.read()
    clk.advance(70 * 1000)
    raises(SensorError, s.read)
    clk.advance(30 * 1000)
    s.read()


def test_led_records_its_state():
    led = SimLED()
    assert not led.value()
    led.on()
    led.toggle()
    led.toggle()
    led.off()
    assert not led.value() and led.changes == 4


def test_system_reset_and_deep_sleep_raise():
    s = SimSystem({"sim": {"unique_id": "a1b2c3"}})
    assert s.unique_id() == b"\xa1\xb2\xc3"
    raises(Reboot, s.reset)
    e = raises(DeepSleep, s.deep_sleep, 60000)
    assert e.ms == 60000
    assert s.mem_free() > 0 and s.reset_cause() == "power_on"
    s.wdt_start(8000)
    s.wdt_feed()
    s.wdt_feed()
    assert s.wdt_timeout_ms == 8000 and s.wdt_feeds == 2


def test_rtc_memory_is_a_file():
    path = "build/test_hal_sim/rtc-%d.bin" % (id(test_rtc_memory_is_a_file) & 0xFFFF)
    s = SimSystem({"sim": {"rtc_file": path}})
    assert s.rtc_read() == b""
    s.rtc_write(b"\x01\x02boot=3")
    assert SimSystem({"sim": {"rtc_file": path}}).rtc_read() == b"\x01\x02boot=3"
    raises(ValueError, s.rtc_write, bytes(2049))
    import os

    os.remove(path)


def test_host_board_builds_without_hardware_modules():
    before = [m for m in ("machine", "network", "esp32") if m in sys.modules]
    hw = hal.build({"name": "host", "sim": True, "led": {"sim": True}, "sensors": ["sim"]}, {})
    assert hw.name == "host" and hw.errors == []
    assert [s.name for s in hw.sensors] == ["sim"]
    assert isinstance(hw.network, SimNetwork) and isinstance(hw.led, SimLED)
    assert "temperature_c" in hw.sensors[0].read()
    raises(Reboot, hw.system.reset)
    assert [m for m in ("machine", "network", "esp32") if m in sys.modules] == before


def test_sim_time_runs_on_past_half_the_ticks_period():
    # ticks_diff from one start tick turns negative after 2**29 ms (6.2 days): the sim's
    # outages and its daily cycle count time from successive readings instead.
    n, clk = _net([[8 * 86400 + 1800, 60]])  # an outage half an hour into day 9
    s, sclk = _sensor()
    for _ in range(8 * 24):
        clk.advance(3_600_000)
        sclk.advance(3_600_000)
        assert n.isconnected() and n.elapsed_ms() > 0
        s.read()
    assert n.elapsed_ms() == 8 * 86_400_000
    clk.advance(1_801_000)
    assert not n.isconnected()  # the outage came on time, after more than one wrap
