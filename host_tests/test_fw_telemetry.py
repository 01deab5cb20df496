# firmware/app/telemetry.py: the reading's JSON per the firmware contract.
import json

import test_fw_fakes as fx  # first: it puts firmware/ on sys.path

# isort: split
from app import telemetry


def test_reading_has_the_contract_fields():
    s1 = fx.FakeSensor(
        "bme280", {"temperature_c": 21.4, "humidity_pct": 40.2, "pressure_hpa": 1008.1}
    )
    r = telemetry.sample([s1], 12, 360, -61, fx.FakeSensorError)
    assert r["temperature_c"] == 21.4
    assert r["humidity_pct"] == 40.2
    assert r["pressure_hpa"] == 1008.1
    assert r["rssi"] == -61
    assert r["uptime_s"] == 360
    assert r["seq"] == 12
    assert "error" not in r
    back = json.loads(telemetry.encode(r))
    assert back == r


def test_fields_come_from_every_sensor():
    a = fx.FakeSensor("sht4x", {"temperature_c": 20.0, "humidity_pct": 50.0})
    b = fx.FakeSensor("mcu", {"mcu_temperature_c": 41.0})
    r = telemetry.sample([a, b], 1, 0, None, fx.FakeSensorError)
    assert r["humidity_pct"] == 50.0 and r["mcu_temperature_c"] == 41.0
    assert "rssi" not in r  # unknown rssi is left out, not null


def test_a_failed_sensor_is_an_error_field_not_a_missing_reading():
    good = fx.FakeSensor("mcu", {"mcu_temperature_c": 41.0})
    bad = fx.FakeSensor("bme280")
    bad.fail = fx.FakeSensorError("bme280: no device (NACK)", 19)
    bus = fx.FakeSensor("dht22")
    bus.fail = OSError(110)
    r = telemetry.sample([bad, good, bus], 3, 10, -50, fx.FakeSensorError)
    assert r["seq"] == 3 and r["mcu_temperature_c"] == 41.0
    assert r["error"] == "bme280: no device (NACK); dht22: 110"


def test_a_bug_in_a_driver_is_not_hidden():
    bad = fx.FakeSensor("x")
    bad.fail = KeyError("k")
    try:
        telemetry.sample([bad], 1, 0, None, fx.FakeSensorError)
    except KeyError:
        return
    raise AssertionError("KeyError swallowed")


def test_sample_time_stamp_when_the_clock_is_set():
    r = telemetry.sample([], 1, 0, None, fx.FakeSensorError)
    ts = telemetry.wall_time_s()
    if ts is None:
        assert "ts" not in r
    else:
        assert abs(r["ts"] - ts) <= 1


def test_with_age_marks_late_delivery():
    p = telemetry.encode({"seq": 4, "uptime_s": 10})
    late = json.loads(telemetry.with_age(p, 25))
    assert late == {"seq": 4, "uptime_s": 10, "age_s": 25}
    assert telemetry.with_age(p, 0) == p
    assert telemetry.with_age(p, -3) == p


def test_epoch_offsets_of_the_two_port_epochs():
    assert telemetry.epoch_offset_s(1970) == 0
    assert telemetry.epoch_offset_s(2000) == 946_684_800  # the ESP32 port's epoch
    assert telemetry.epoch_offset_s(2001) == 946_684_800 + 366 * 86400  # 2000 was leap
    import time

    assert telemetry.EPOCH_OFFSET_S == telemetry.epoch_offset_s(time.gmtime(0)[0])


def test_ts_is_unix_time_whatever_the_port_epoch():
    esp32 = telemetry.epoch_offset_s(2000)
    # An ESP32 whose RTC was set to 2026-01-01 00:00 UTC: time.time() counts from 2000.
    assert telemetry.wall_time_s(1_767_225_600 - esp32, esp32) == 1_767_225_600
    assert telemetry.wall_time_s(1_767_225_600, 0) == 1_767_225_600  # the unix port
    # Just after power-on an ESP32 says 2000-01-01 (plus uptime): no timestamp then.
    assert telemetry.wall_time_s(0, esp32) is None
    assert telemetry.wall_time_s(86400 * 30, esp32) is None
    assert telemetry.wall_time_s(1_500_000_000, 0) is None


def test_ts_on_this_interpreter_is_now_in_unix_seconds():
    import time

    ts = telemetry.wall_time_s()
    assert ts is not None  # the host's clock is set
    assert abs(ts - (int(time.time()) + telemetry.EPOCH_OFFSET_S)) <= 1
    assert ts > 1_700_000_000
