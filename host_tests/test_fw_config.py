# firmware/app/config.py: defaults, types, unknown keys, the fatal cases, secrets, the
# run-time change and its persistence.
import json

import test_fw_fakes as fx  # first: it puts firmware/ on sys.path

# isort: split
from app import config

from support import raises


def _valid(raw):
    return config.validate(raw)


def test_defaults_fill_everything_not_given():
    cfg, problems = _valid({"broker": {"host": "10.0.0.2"}})
    assert problems == []
    assert cfg["prefix"] == "mote"
    assert cfg["interval_s"] == 60
    assert cfg["qos"] == 1
    assert cfg["sleep"] == "none"
    assert cfg["ha_discovery"] is True
    assert cfg["device_id"] is None
    assert cfg["broker"]["port"] == 0
    assert cfg["broker"]["host"] == "10.0.0.2"
    assert cfg["broker"]["user"] is None
    assert cfg["wifi"]["ssid"] == ""
    assert cfg["wifi"]["timeout_s"] == 15
    assert cfg["sim"] == {}
    assert cfg["board"] == {}
    assert cfg["broker"]["timeout_s"] == 5
    assert cfg["ntp"] == {"host": "pool.ntp.org", "timeout_s": 2}
    assert cfg["watchdog_s"] == 120


def test_missing_broker_is_a_clear_fatal_error():
    e = raises(config.ConfigError, _valid, {"wifi": {"ssid": "x"}})
    assert "broker.host" in e.args[0]
    e = raises(config.ConfigError, _valid, {"broker": {"host": ""}})
    assert "broker.host" in e.args[0]


def test_not_an_object_is_fatal():
    raises(config.ConfigError, _valid, [1, 2])
    raises(config.ConfigError, _valid, "x")


def test_unknown_keys_are_reported_and_ignored():
    cfg, problems = _valid({"broker": {"host": "h", "prot": 1884}, "intervall_s": 5})
    assert "intervall_s: unknown setting (ignored)" in problems
    assert "broker.prot: unknown setting (ignored)" in problems
    assert "intervall_s" not in cfg
    assert cfg["interval_s"] == 60


def test_wrong_types_fall_back_to_defaults_and_are_reported():
    cfg, problems = _valid(
        {"broker": {"host": "h", "keepalive_s": "5"}, "interval_s": "30", "wifi": 5}
    )
    assert cfg["interval_s"] == 60
    assert cfg["broker"]["keepalive_s"] == 60
    assert cfg["wifi"]["ssid"] == ""
    text = " | ".join(problems)
    assert "interval_s: expected int" in text
    assert "broker.keepalive_s: expected int" in text
    assert "wifi: expected object" in text


def test_bool_is_not_an_int():
    cfg, problems = _valid({"broker": {"host": "h"}, "interval_s": True})
    assert cfg["interval_s"] == 60 and problems


def test_ranges_and_choices_are_checked():
    cfg, problems = _valid({"broker": {"host": "h"}, "interval_s": 0, "qos": 2, "sleep": "light"})
    assert cfg["interval_s"] == 60 and cfg["qos"] == 1 and cfg["sleep"] == "none"
    assert len(problems) == 3
    assert "interval_s: must be 1..86400 (using the default)" in problems


def test_problems_never_contain_values_so_no_secret_is_printed():
    _, problems = _valid({"broker": {"host": "h"}, "wifi": {"password": ["hunter2"]}})
    assert len(problems) == 1 and "hunter2" not in problems[0]
    e = raises(config.ConfigError, _valid, {"broker": {"host": "h", "password": 12345}})
    assert "12345" not in e.args[0] and "broker.password: expected" in e.args[0]


def test_redacted_hides_the_passwords_only():
    cfg, _ = _valid({"broker": {"host": "h", "password": "pw1"}, "wifi": {"password": "pw2"}})
    r = config.redacted(cfg)
    assert r["broker"]["password"] == "***" and r["wifi"]["password"] == "***"
    assert cfg["broker"]["password"] == "pw1"  # a copy was changed
    assert "pw1" not in json.dumps(r) and "pw2" not in json.dumps(r)
    cfg, _ = _valid({"broker": {"host": "h"}})
    assert config.redacted(cfg)["broker"]["password"] is None


def _write(name, text):
    path = fx.TMP + "/" + name
    with open(path, "w") as f:
        f.write(text)
    return path


def test_load_reads_a_file():
    path = _write("mote_fw_cfg1.json", '{"broker": {"host": "b"}, "interval_s": 7, "x": 1}')
    cfg, raw, problems = config.load(path)
    assert cfg["interval_s"] == 7
    assert raw == {"broker": {"host": "b"}, "interval_s": 7, "x": 1}
    assert problems == ["x: unknown setting (ignored)"]


def test_load_missing_or_broken_file_is_fatal():
    e = raises(config.ConfigError, config.load, fx.TMP + "/mote_no_such_file.json")
    assert "not found" in e.args[0]
    path = _write("mote_fw_cfg2.json", '{"broker": ')
    e = raises(config.ConfigError, config.load, path)
    assert "not valid JSON" in e.args[0]


def test_change_applies_all_or_nothing():
    raw = {"broker": {"host": "h"}, "remote_config": ["interval_s", "broker.port", "broker.host"]}
    cfg, problems = _valid(raw)
    raw = {"broker": {"host": "h"}}
    names = config.change(cfg, raw, {"interval_s": 30, "broker.port": 1884})
    assert sorted(names) == ["broker.port", "interval_s"]
    assert cfg["interval_s"] == 30 and cfg["broker"]["port"] == 1884
    assert raw == {"broker": {"host": "h", "port": 1884}, "interval_s": 30}
    e = raises(ValueError, config.change, cfg, raw, {"interval_s": 5, "nope": 1})
    assert "nope" in e.args[0]
    assert cfg["interval_s"] == 30
    e = raises(ValueError, config.change, cfg, raw, {"interval_s": "5"})
    assert "expected int" in e.args[0]
    raises(ValueError, config.change, cfg, raw, {"broker.host": ""})
    raises(ValueError, config.change, cfg, raw, {"broker": {"host": "x"}})
    raises(ValueError, config.change, cfg, raw, {})
    raises(ValueError, config.change, cfg, raw, [1])


def test_change_creates_a_missing_section_in_raw():
    cfg, _ = _valid({"broker": {"host": "h"}, "remote_config": ["wifi.ssid"]})
    raw = {"broker": {"host": "h"}}
    config.change(cfg, raw, {"wifi.ssid": "home"})
    assert raw["wifi"] == {"ssid": "home"}


def test_save_then_load_round_trips():
    path = fx.TMP + "/mote_fw_cfg3.json"
    raw = {"broker": {"host": "h", "password": "s"}, "interval_s": 9}
    from app import online  # config.json's writer: app.config is not loaded to save

    online.save(raw, path)
    online.save(raw, path)  # replaces an existing file
    cfg, raw2, problems = config.load(path)
    assert raw2 == raw and cfg["interval_s"] == 9 and problems == []


def test_board_defaults_apply_where_the_file_is_silent():
    raw = {"broker": {"host": "h"}, "qos": 0}
    cfg, problems = _valid(raw)
    config.board_defaults(cfg, raw, {"interval_s": 10, "qos": 1, "zap": 1}, problems)
    assert cfg["interval_s"] == 10
    assert cfg["qos"] == 0  # the file said so
    assert problems == ["board defaults: zap: unknown setting (ignored)"]
    config.board_defaults(cfg, raw, None, problems)


# --- the watchdog must outlast every blocking call -------------------------------------


def test_watchdog_shorter_than_an_mqtt_connect_is_reported_and_raised():
    # broker.timeout_s 10: TCP connect, CONNACK and two SUBACKs may each take 10 s, and a
    # broker given by name adds a DNS lookup (15 s): 55 s, plus a 5 s margin.
    cfg, problems = _valid({"broker": {"host": "mqtt.lan", "timeout_s": 10}, "watchdog_s": 30})
    assert cfg["watchdog_s"] == 60
    msg = [p for p in problems if p.startswith("watchdog_s:")]
    assert msg == [
        "watchdog_s: must be 0 (off) or at least 60 s: an MQTT connect (broker.timeout_s x 4,"
        " DNS) can block 55 s (using 60)"
    ]
    # an address needs no lookup; TLS adds its handshake
    cfg, problems = _valid({"broker": {"host": "10.0.0.2"}, "watchdog_s": 25})
    assert cfg["watchdog_s"] == 25 and problems == []
    cfg, problems = _valid({"broker": {"host": "10.0.0.2", "tls": True}, "watchdog_s": 25})
    assert cfg["watchdog_s"] == 30 and "TLS" in problems[0]


def test_watchdog_and_a_slow_ntp_query():
    raw = {"broker": {"host": "10.0.0.2", "timeout_s": 1}, "ntp": {"timeout_s": 10}}
    cfg, problems = _valid(dict(raw, watchdog_s=20))
    assert cfg["watchdog_s"] == 30 and "an NTP query" in problems[0]
    raw["ntp"]["host"] = None  # NTP off: only the MQTT connect counts
    cfg, problems = _valid(dict(raw, watchdog_s=20))
    assert cfg["watchdog_s"] == 20 and problems == []


def test_watchdog_off_is_always_allowed():
    cfg, problems = _valid({"broker": {"host": "mqtt.lan", "timeout_s": 60}, "watchdog_s": 0})
    assert cfg["watchdog_s"] == 0 and problems == []


def test_default_watchdog_outlasts_the_defaults_but_not_every_timeout():
    cfg, problems = _valid({"broker": {"host": "mqtt.lan", "tls": True}})
    assert problems == [] and cfg["watchdog_s"] == 120
    cfg, problems = _valid({"broker": {"host": "mqtt.lan", "timeout_s": 60}})
    assert cfg["watchdog_s"] == 260 and problems[0].startswith("watchdog_s: must be")


def test_a_remote_change_that_starves_the_watchdog_is_refused():
    raw = {"broker": {"host": "mqtt.lan"}, "remote_config": ["watchdog_s", "broker.timeout_s"]}
    cfg, _ = _valid(raw)
    e = raises(ValueError, config.change, cfg, raw, {"watchdog_s": 10})
    assert e.args[0].startswith("watchdog_s: must be 0 (off) or at least 40 s")
    raises(ValueError, config.change, cfg, raw, {"broker.timeout_s": 60})
    assert cfg["watchdog_s"] == 120 and cfg["broker"]["timeout_s"] == 5  # nothing changed
    config.change(cfg, raw, {"watchdog_s": 300, "broker.timeout_s": 60})
    assert cfg["watchdog_s"] == 300 and cfg["broker"]["timeout_s"] == 60


def test_board_defaults_are_checked_against_the_watchdog_too():
    raw = {"broker": {"host": "10.0.0.2"}, "watchdog_s": 25}
    cfg, problems = _valid(raw)
    config.board_defaults(cfg, raw, {"broker.timeout_s": 10}, problems)
    assert cfg["watchdog_s"] == 45 and problems[0].startswith("watchdog_s: must be")


def test_the_example_config_is_valid_and_complete():
    from support import repo_path

    cfg, raw, problems = config.load(repo_path("firmware", "config.example.json"))
    assert problems == []
    assert raw["ntp"] == {"host": "pool.ntp.org", "timeout_s": 2}
    assert raw["broker"]["timeout_s"] == cfg["broker"]["timeout_s"] == 5


def test_client_buffers_come_from_config_or_the_board_and_reach_the_client():
    from app import setup

    cfg, problems = _valid({"broker": {"host": "10.0.0.2"}})
    assert (cfg["broker"]["rx_size"], cfg["broker"]["outbox_size"]) == (1024, 1024)
    raw = {"broker": {"host": "10.0.0.2", "rx_size": 512}}
    cfg, problems = _valid(raw)
    config.board_defaults(cfg, raw, {"broker.rx_size": 4096, "broker.outbox_size": 8192}, problems)
    assert (cfg["broker"]["rx_size"], cfg["broker"]["outbox_size"]) == (512, 8192)  # file wins
    assert problems == []
    c = setup.make_client(cfg, b"buffers")
    assert (len(c._s.rx_buf), len(c._s._ob)) == (512, 8192)
    cfg["sleep"] = "deep"  # the session must fit RTC memory: the outbox is capped
    assert len(setup.make_client(cfg, b"deep")._s._ob) == 1024
    cfg, problems = _valid({"broker": {"host": "10.0.0.2", "rx_size": 100, "outbox_size": "big"}})
    assert (cfg["broker"]["rx_size"], cfg["broker"]["outbox_size"]) == (1024, 1024)
    assert len(problems) == 2 and "broker.rx_size" in problems[0]
