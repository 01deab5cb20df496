# firmware/app/ha.py: Home Assistant discovery payloads.
import json

import test_fw_fakes as _fx  # noqa: F401  (first: it puts firmware/ on sys.path)

# isort: split
from app import ha

_ALL = ("temperature_c", "humidity_pct", "pressure_hpa", "rssi", "uptime_s")


def _msgs(fields=("temperature_c", "humidity_pct", "rssi", "uptime_s", "seq"), led=True):
    out = {}
    for topic, payload in ha.messages(
        "homeassistant", "mote", "a1b2", "esp32", "0.1", fields, led
    ):
        out[topic.decode()] = json.loads(payload)
    return out


def test_one_sensor_per_known_field_and_a_led_switch():
    m = _msgs()
    assert sorted(m) == [
        "homeassistant/sensor/mote_a1b2/humidity_pct/config",
        "homeassistant/sensor/mote_a1b2/rssi/config",
        "homeassistant/sensor/mote_a1b2/temperature_c/config",
        "homeassistant/sensor/mote_a1b2/uptime_s/config",
        "homeassistant/switch/mote_a1b2/led/config",
    ]


def test_sensor_payload_points_at_the_telemetry():
    t = _msgs()["homeassistant/sensor/mote_a1b2/temperature_c/config"]
    assert t["~"] == "mote/a1b2"
    assert t["stat_t"] == "~/telemetry"
    assert t["val_tpl"] == "{{ value_json.temperature_c }}"
    assert t["unit_of_meas"] == "°C"
    assert t["dev_cla"] == "temperature"
    assert t["avty_t"] == "~/status"
    assert t["uniq_id"] == "mote_a1b2_temperature_c"
    assert t["dev"]["ids"] == ["mote_a1b2"]
    assert t["dev"]["mdl"] == "esp32" and t["dev"]["sw"] == "0.1"
    assert "ent_cat" not in t
    assert _msgs()["homeassistant/sensor/mote_a1b2/rssi/config"]["ent_cat"] == "diagnostic"


def test_led_switch_uses_the_led_command_and_the_retained_state_topic():
    s = _msgs()["homeassistant/switch/mote_a1b2/led/config"]
    assert s["cmd_t"] == "~/cmd/led"
    assert s["stat_t"] == "~/led"  # retained on/off, not the reply (issue 11)
    assert "val_tpl" not in s
    assert (s["pl_on"], s["pl_off"], s["stat_on"], s["stat_off"]) == ("on", "off", "on", "off")


def test_no_led_no_switch_and_unique_ids_are_safe():
    m = ha.messages("ha", "my-home", "dev.1", "host", "0.1", ["pressure_hpa"], False)
    assert [t for t, _ in m] == [b"ha/sensor/my_home_dev_1/pressure_hpa/config"]
    assert json.loads(m[0][1])["uniq_id"] == "my_home_dev_1_pressure_hpa"


def test_payloads_are_small_enough_for_the_client_buffer():
    for topic, payload in ha.messages(
        "homeassistant", "mote", "0123456789ab", "esp32s3", "0.1.0", list(_ALL)
    ):
        assert len(payload) + len(topic) < 512


def test_every_known_field_gets_a_sensor_and_values_are_json_quoted():
    m = ha.messages("ha", "p", 'a"b\\c', 'bo"ard', "0.1", list(_ALL) + ["seq"], False)
    assert [t.split(b"/")[3] for t, _ in m] == [f.encode() for f in _ALL]
    for _, payload in m:
        d = json.loads(payload)
        assert d["~"] == 'p/a"b\\c'
        assert d["dev"]["name"] == 'mote a"b\\c' and d["dev"]["mdl"] == 'bo"ard'
        assert d["dev"]["ids"] == ["p_a_b_c"] and d["dev"]["mf"] == "mote"
        assert d["stat_cla"] == "measurement"
    units = [json.loads(p)["unit_of_meas"] for _, p in m]
    assert units == ["\u00b0C", "%", "hPa", "dBm", "s"]
