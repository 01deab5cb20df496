# firmware/app/commands.py: payload parsing, every command, bad payloads, duplicate ids.
# The commands act on a real Node built on fakes (test_fw_fakes).
import json

import test_fw_fakes as fx  # first: it puts firmware/ on sys.path

# isort: split
from app import commands
from app import node as node_mod
from app.commands import CommandError, parse

from support import raises


def _node(**over):
    node, client, hw, clock = fx.make_node(**over)
    return node, hw


def _run(node, name, payload=b"{}"):
    return json.loads(node.commands.handle(name, payload))


# --- parse -----------------------------------------------------------------------------


def test_parse_plain_text_numbers_and_envelopes():
    assert parse(b"") == (None, None)
    assert parse(b"  ") == (None, None)
    assert parse(b"on") == (None, "on")
    assert parse(b" toggle\n") == (None, "toggle")
    assert parse(b"30") == (None, 30)
    assert parse(b'"off"') == (None, "off")
    assert parse(b"-5") == (None, -5)
    assert parse(b"12abc") == (None, "12abc")
    assert parse(b'{"id": 7, "arg": 30}') == (7, 30)
    assert parse(b'{"id": "a-1"}') == ("a-1", None)
    assert parse(b'{"arg": {"interval_s": 5}}') == (None, {"interval_s": 5})
    assert parse(bytearray(b"on")) == (None, "on")


def test_parse_rejects_bad_payloads():
    raises(CommandError, parse, b"\xff\xfe")
    raises(CommandError, parse, b'{"id": 1,')
    raises(CommandError, parse, b"[1, 2]")
    raises(CommandError, parse, b'"unterminated')
    raises(CommandError, parse, b'{"id": 1, "argh": 2}')
    raises(CommandError, parse, b'{"id": [1]}')
    raises(CommandError, parse, b'{"id": 1.5}')
    raises(CommandError, parse, b'{"id": "' + b"x" * 65 + b'"}')


# --- each command ------------------------------------------------------------------------


def test_ping():
    node, _ = _node()
    r = _run(node, "ping")
    assert r["ok"] is True and r["pong"] is True and "uptime_s" in r


def test_read_takes_a_reading_now():
    node, _ = _node()
    r = _run(node, "read")
    assert r["ok"] is True and r["seq"] == 1
    assert r["reading"]["temperature_c"] == 21.5
    assert _run(node, "read")["seq"] == 2


def test_interval_sets_and_reports():
    node, _ = _node()
    assert _run(node, "interval", b"30") == {"ok": True, "interval_s": 30}
    assert node.interval_s == 30
    assert _run(node, "interval", b'{"arg": "45"}')["interval_s"] == 45
    assert _run(node, "interval")["interval_s"] == 45


def test_interval_bad_arguments():
    node, _ = _node()
    for bad in (b"0", b"86401", b"fast", b"1.5", b'{"arg": [1]}', b'{"arg": true}'):
        r = _run(node, "interval", bad)
        assert r["ok"] is False and "interval" in r["error"], bad
    assert node.interval_s == 60


def test_led_on_off_toggle_and_state():
    node, hw = _node()
    assert _run(node, "led", b"on") == {"ok": True, "led": "on"}
    assert hw.led.lit
    assert _run(node, "led", b"OFF")["led"] == "off"
    assert _run(node, "led", b"toggle")["led"] == "on"
    assert _run(node, "led")["led"] == "on"
    r = _run(node, "led", b"blink")
    assert r == {"ok": False, "error": "led takes on, off or toggle"}
    assert _run(node, "led", b"1")["ok"] is False


def test_info_reports_version_board_memory_uptime():
    node, _ = _node()
    r = _run(node, "info")
    assert r["ok"] is True
    for k in ("version", "board", "mem_free", "uptime_s", "device_id", "interval_s", "mqtt"):
        assert k in r, k
    assert r["board"] == "fake" and r["device_id"] == "deadbeef" and r["mem_free"] == 100000
    assert set(r["mqtt"]) == {"connected", "reconnects", "pending"}  # the main counters
    r = _run(node, "info", b'{"id": 4}')
    assert r["id"] == 4 and r["device_id"] == "deadbeef"  # the command id, not the device's


def test_info_mqtt_gives_all_the_clients_stats():
    node, _ = _node()
    r = _run(node, "info", b"mqtt")
    assert set(r) == {"mqtt", "ok"} and r["mqtt"] == node.client.stats(), r
    assert _run(node, "info", b"bogus") == {"ok": False, "error": "info takes nothing, or mqtt"}


def test_info_mem_free_is_measured_after_a_collection():
    from support import only_micropython

    only_micropython("gc.mem_free")
    import gc

    from hal.sim import SimSystem

    node, hw = _node()
    hw.system = SimSystem({"sim": {"rtc_file": fx.TMP + "/mote_fw_info_rtc.bin"}})
    gc.collect()
    before = gc.mem_free()
    junk = bytearray(40_000)
    junk = None  # unreachable, but counted as used until the next collection
    free = _run(node, "info")["mem_free"]
    assert junk is None and free > before - 20_000, (before, free)


def test_out_of_memory_in_a_command_is_answered_not_fatal():
    node, _ = _node()

    def no_room():
        raise MemoryError("memory allocation failed, allocating 344 bytes")

    node.read_now = no_room
    assert _run(node, "read", b'{"id": 9}') == {"ok": False, "error": "out of memory", "id": 9}
    assert node.commands.failed == 1
    assert _run(node, "ping")["ok"] is True


def test_info_carries_config_problems():
    node, _ = _node(bogus=1)
    assert "bogus: unknown setting" in _run(node, "info")["error"]


def test_reboot_is_requested_not_immediate():
    node, _ = _node()
    assert _run(node, "reboot") == {"ok": True, "rebooting": True}
    assert node._reboot


def test_config_get_is_redacted():
    node, _ = _node(broker={"password": "topsecret"})
    raw = node.commands.handle("config", b"{}")
    assert b"topsecret" not in raw
    r = json.loads(raw)
    assert r["ok"] and r["config"]["broker"]["password"] == "***"


def test_config_set_applies_and_persists():
    path = fx.TMP + "/mote_fw_cmd_config.json"
    node, _ = _node(config_path=path, remote_config=["interval_s", "broker.port"])
    r = _run(node, "config", b'{"id": 1, "arg": {"interval_s": 17, "broker.port": 1884}}')
    assert r["ok"] is True and r["reboot_required"] is True
    assert sorted(r["changed"]) == ["broker.port", "interval_s"]
    assert node.interval_s == 17
    with open(path) as f:
        saved = json.loads(f.read())
    assert saved["interval_s"] == 17 and saved["broker"]["port"] == 1884
    assert saved["broker"]["host"] == "127.0.0.1"


def test_config_set_live_setting_needs_no_reboot():
    node, _ = _node()
    r = _run(node, "config", b'{"arg": {"qos": 0}}')
    assert r["ok"] and r["reboot_required"] is False and node.cfg["qos"] == 0


def test_config_bad_arguments():
    node, _ = _node()
    for bad in (
        b"interval_s=5",
        b'{"arg": {"nope": 1}}',
        b'{"arg": {"interval_s": "x"}}',
        b'{"arg": {}}',
    ):
        r = _run(node, "config", bad)
        assert r["ok"] is False and r["error"], bad
    assert node.interval_s == 60


def test_config_unsaveable_is_reported():
    node, _ = _node(config_path="/nonexistent-dir/x/config.json")
    r = _run(node, "config", b'{"arg": {"interval_s": 5}}')
    assert r["ok"] is False and "not saved" in r["error"]


# --- errors and duplicates ---------------------------------------------------------------


def test_unknown_command():
    node, _ = _node()
    assert _run(node, "selfdestruct") == {"ok": False, "error": "unknown command: selfdestruct"}
    assert _run(node, "_cmd_ping")["ok"] is False  # no reaching into the table
    assert _run(node, "x" * 40)["error"] == "command name too long"


def test_bad_payloads_get_ok_false():
    node, _ = _node()
    for bad in (b"\xff", b"{broken", b"[1]", b'{"id": 1, "zzz": 2}'):
        r = _run(node, "ping", bad)
        assert r["ok"] is False and r["error"], bad
    assert node.commands.failed == 4


def test_reply_echoes_the_id():
    node, _ = _node()
    assert _run(node, "ping", b'{"id": "abc"}')["id"] == "abc"
    assert _run(node, "led", b'{"id": 5, "arg": "bad"}') == {
        "ok": False,
        "error": "led takes on, off or toggle",
        "id": 5,
    }


def test_redelivered_command_is_answered_but_not_run_twice():
    node, hw = _node()
    first = node.commands.handle("led", b'{"id": 9, "arg": "toggle"}')
    assert hw.led.lit
    again = node.commands.handle("led", b'{"id": 9, "arg": "toggle"}')
    assert again == first and hw.led.lit
    assert node.commands.duplicates == 1
    node.commands.handle("led", b'{"id": 10, "arg": "toggle"}')
    assert not hw.led.lit
    node.commands.handle("led", b'{"arg": "toggle"}')  # no id: always runs
    node.commands.handle("led", b'{"arg": "toggle"}')
    assert not hw.led.lit


def test_ids_are_per_command_and_type():
    node, hw = _node()
    node.commands.handle("read", b'{"id": 1}')
    node.commands.handle("read", b'{"id": "1"}')
    r = json.loads(node.commands.handle("ping", b'{"id": 1}'))
    assert r["pong"] is True
    assert node.seq == 2


def test_only_recent_ids_are_remembered():
    node, _ = _node()
    for i in range(20):
        node.commands.handle("read", b'{"id": %d}' % i)
    assert node.seq == 20
    node.commands.handle("read", b'{"id": 19}')
    assert node.seq == 20
    node.commands.handle("read", b'{"id": 0}')  # forgotten: runs again
    assert node.seq == 21


def test_ids_restored_after_reboot_are_not_run_again():
    node, _ = _node()
    c = node.commands = node_mod.Commands(node)  # the state a rebooted node starts with
    commands.restore_keys(c, ["reboot/#4", 5, "read/x"])
    r = json.loads(c.handle("reboot", b'{"id": 4}'))
    assert r == {"ok": True, "duplicate": True, "id": 4}
    assert not node._reboot
