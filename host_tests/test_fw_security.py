# The node's safety rules (issue 11), on fakes: retained and empty commands, the remote
# config allow-list, topic and security-setting validation, the last good configuration,
# flash writes, signed commands (app.sign), mutual TLS settings, the LED state topic,
# ids on rejected commands and dropped oversize commands.
import json
import os

import test_fw_fakes as fx  # first: it puts firmware/ on sys.path

# isort: split
from app import commands, config

from support import MICROPYTHON, raises, skip


def _load_sign():
    # app.sign is on demand: the node imports and forgets it for each signed command,
    # and test_fw_node checks that nothing such stays in sys.modules; keep it out of there.
    from app import sign

    from hal import unload

    unload("app.sign")
    return sign


sign = _load_sign()

DEV = "mote/deadbeef"
KEY = "0123456789abcdef-key"


def _reply(client, name, i=-1):
    return json.loads(client.on("/reply/" + name)[i][1])


def _rm(*paths):
    for p in paths:
        try:
            os.remove(p)
        except OSError:
            pass


def _write(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj) if type(obj) is not str else obj)


def _read(path):
    with open(path) as f:
        return json.loads(f.read())


def _writes(node):
    """config.json writes since boot (info's config_writes)."""
    return json.loads(node.commands.handle("info", b"{}"))["config_writes"]


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


# --- 1. retained and empty commands ------------------------------------------------------


def test_a_retained_command_is_refused_with_its_id_and_never_runs():
    node, client, hw, clock = fx.make_node()
    node.step()
    client.inject(DEV + "/cmd/reboot", b"now", True)
    client.inject(DEV + "/cmd/led", b'{"id": "r1", "arg": "on"}', True)
    node.step()
    assert _reply(client, "reboot") == {"ok": False, "error": "retained command refused"}
    assert _reply(client, "led") == {"ok": False, "error": "retained command refused", "id": "r1"}
    assert not node._reboot and not hw.led.lit
    # the same command, live, runs
    client.inject(DEV + "/cmd/led", b'{"id": "r2", "arg": "on"}')
    node.step()
    assert _reply(client, "led")["led"] == "on" and hw.led.lit


def test_a_retained_reboot_does_not_reboot_and_clearing_it_does_not_either():
    node, client, hw, clock = fx.make_node()
    node.start()
    node.step()
    client.inject(DEV + "/cmd/reboot", b'{"id": 1}', True)  # replayed at every connect
    node.step()
    client.inject(DEV + "/cmd/reboot", b"")  # mosquitto_pub -r -n: an empty payload
    node.step()
    assert not node._reboot and client.disconnects == 0
    replies = [json.loads(p[1]) for p in client.on("/reply/reboot")]
    assert replies == [
        {"ok": False, "error": "retained command refused", "id": 1},
        {"ok": False, "error": "empty payload: not a command"},
    ]


def test_an_empty_payload_is_no_command():
    node, client, hw, clock = fx.make_node()
    seq = node.seq
    r = json.loads(node.commands.handle("read", b""))
    assert r == {"ok": False, "error": "empty payload: not a command"} and node.seq == seq


# --- 2. the remote config allow-list -----------------------------------------------------


def test_remote_config_defaults_to_the_live_settings():
    cfg, problems = config.validate({"broker": {"host": "h"}})
    assert cfg["remote_config"] == [
        "interval_s",
        "qos",
        "ha_discovery",
        "awake_s",
        "backoff_max_s",
    ]
    assert problems == []


def test_a_setting_not_in_remote_config_is_refused_and_nothing_is_saved():
    path = fx.TMP + "/mote_sec_allow.json"
    _rm(path)
    node, client, hw, clock = fx.make_node(config_path=path)
    for arg, name in (
        ({"broker.port": 1884}, "broker.port"),
        ({"interval_s": 5, "broker.host": "evil"}, "broker.host"),
        ({"wifi.ssid": "x"}, "wifi.ssid"),
        ({"device_id": "x"}, "device_id"),
        ({"prefix": "x"}, "prefix"),
        ({"cmd_key": "x" * 20}, "cmd_key"),
        ({"remote_config": ["broker.port"]}, "remote_config"),
    ):
        p = json.dumps({"id": name, "arg": arg}).encode()
        r = json.loads(node.commands.handle("config", p))
        assert r == {"ok": False, "error": "not remotely configurable: " + name, "id": name}, r
    assert not _exists(path) and node.cfg["broker"]["port"] == 0 and node.interval_s == 60


def test_remote_config_and_cmd_key_are_never_remotely_changeable_even_when_listed():
    raw = {"broker": {"host": "h"}, "remote_config": ["cmd_key", "remote_config", "qos", "zzz"]}
    cfg, problems = config.validate(raw)
    assert cfg["remote_config"] == ["qos"]
    assert "remote_config: cmd_key is never remotely changeable" in problems
    assert "remote_config: remote_config is never remotely changeable" in problems
    assert "remote_config: unknown setting (ignored): zzz" in problems
    e = raises(ValueError, config.change, cfg, raw, {"cmd_key": "k" * 16})
    assert e.args[0] == "not remotely configurable: cmd_key"


def test_a_listed_topic_setting_is_still_validated():
    raw = {"broker": {"host": "h"}, "remote_config": ["prefix", "device_id", "ha_prefix"]}
    cfg, _ = config.validate(raw)
    for bad in ({"prefix": "a/#"}, {"device_id": "+"}, {"device_id": ""}, {"prefix": "x" * 300}):
        raises(ValueError, config.change, cfg, raw, bad)
    assert cfg["prefix"] == "mote"
    assert config.change(cfg, raw, {"prefix": "home/mote"}) == ["prefix"]


# --- 3. topic parts, the last good configuration ------------------------------------------


def test_topic_parts_are_validated_when_loading():
    for bad, what in (
        ({"prefix": "a/#"}, "prefix: must not contain"),
        ({"device_id": "+"}, "device_id: must not contain"),
        ({"ha_prefix": "ha\x00"}, "ha_prefix: must not contain"),
        ({"device_id": ""}, "device_id: must not be empty"),
        ({"prefix": ""}, "prefix: must not be empty"),
        ({"prefix": "p" * 2000}, "too long"),
        ({"ha_prefix": "h" * 200}, "too long"),
    ):
        raw = {"broker": {"host": "h"}}
        raw.update(bad)
        e = raises(config.ConfigError, config.validate, raw)
        assert what in e.args[0], (bad, e.args[0])
    cfg, problems = config.validate({"broker": {"host": "h"}, "device_id": None})
    assert cfg["device_id"] is None and problems == []  # null: the board's id


def test_the_longest_topics_fit_the_client_buffers():
    # The longest topics: <ha_prefix>/sensor/<p>_<id>/pressure_hpa/config (Home Assistant,
    # 42 bytes besides prefix and id with the default ha_prefix) and <p>/<id>/reply/ with a
    # 32-character command name (40). They must fit the client's 256-byte tx buffer with
    # a packet header: at most 246 bytes, so prefix + device_id may have 204.
    from app import ha

    d = "d" * 40
    cfg, _ = config.validate({"broker": {"host": "h"}, "prefix": "p" * 164, "device_id": d})
    topics = [
        t for t, _ in ha.messages(cfg["ha_prefix"], cfg["prefix"], d, "b", "0", ["pressure_hpa"])
    ]
    topics.append((cfg["prefix"] + "/" + d + "/reply/" + "n" * 32).encode())
    assert max(len(t) for t in topics) == 246
    e = raises(config.ConfigError, config.validate, dict(cfg, prefix="p" * 165))
    assert (
        e.args[0] == "prefix, device_id, ha_prefix: too long: topics of 247 bytes, at most 246 fit"
    )
    # UTF-8 bytes count, not characters
    raises(config.ConfigError, config.validate, dict(cfg, prefix="\u00e9" * 83))


def _boot(path):
    import sys

    from app import setup

    board_dir = fx.ROOT + "/boards/host"
    if board_dir not in sys.path:
        sys.path.append(board_dir)
    return setup.boot(path)


def test_an_invalid_config_json_falls_back_to_the_last_good_one():
    path = fx.TMP + "/mote_sec_lg.json"
    good = fx.TMP + "/mote_sec_lg.last-good.json"
    rtc = fx.TMP + "/mote_sec_lg_rtc.bin"
    _rm(path, good)
    _write(good, {"broker": {"host": "10.0.0.2"}, "prefix": "ok", "sim": {"rtc_file": rtc}})
    _write(path, {"broker": {"host": "10.0.0.2"}, "prefix": "a/#", "sim": {"rtc_file": rtc}})
    cfg, raw, problems, hw, trial = _boot(path)
    assert cfg["prefix"] == "ok" and trial == 0
    assert problems[0].startswith("prefix: must not contain +, # or NUL")
    assert problems[0].endswith("(using " + good + ")")
    # a security setting of the wrong type: the same
    _write(path, {"broker": {"host": "10.0.0.2", "tls": "yes"}, "sim": {"rtc_file": rtc}})
    cfg, raw, problems, hw, trial = _boot(path)
    assert cfg["prefix"] == "ok" and "broker.tls: expected bool" in problems[0]
    # a valid config.json whose broker settings differ from the last good one is on trial
    _write(path, {"broker": {"host": "10.0.0.3"}, "prefix": "ok", "sim": {"rtc_file": rtc}})
    assert _boot(path)[4] == 1
    # other differences are written as last good at the first connect but never rolled
    # back (the broker may just be down at that boot)
    _write(path, {"broker": {"host": "10.0.0.2"}, "interval_s": 9, "sim": {"rtc_file": rtc}})
    assert _boot(path)[4] == -1
    _rm(good)
    assert _boot(path)[4] == -1  # nothing to go back to


def test_nothing_usable_at_all_is_fatal_and_run_says_so():
    import app

    path = fx.TMP + "/mote_sec_fatal.json"
    _rm(fx.TMP + "/mote_sec_fatal.last-good.json")
    _write(path, {"broker": {"host": "h", "port": "8883"}})
    assert _boot(path) is None
    assert app.run(path) == 1


def test_a_config_that_never_connects_goes_back_to_the_last_good_one():
    path = fx.TMP + "/mote_sec_trial.json"
    good = fx.TMP + "/mote_sec_trial.last-good.json"
    rejected = fx.TMP + "/mote_sec_trial.rejected.json"
    _rm(path, good, rejected)
    old = {"broker": {"host": "127.0.0.1"}, "watchdog_s": 30}
    new = {"broker": {"host": "127.0.0.1", "port": 1884}, "watchdog_s": 30}
    _write(good, old)
    _write(path, new)
    client = fx.FakeClient()
    client.broker_up = False
    node, client, hw, clock = fx.make_node(client=client, config_path=path, backoff_max_s=1)
    node.trial = 1  # what app.setup.boot found: config.json differs from the last good one
    node.start()
    fx.run_for(node, clock, 4_000)
    assert not node._reboot and node.trial == 5  # 4 failed connects so far
    raises(fx.FakeReboot, node.run)  # the 5th fails too: back to the last good one, reset
    assert _read(path) == old and _read(rejected) == new
    assert _read(good) == old
    # after the reset, boot reports it (console and <p>/<id>/error) at every boot ...
    cfg, raw, problems, hw2, trial = _boot(path)
    assert trial == 0 and raw == old
    assert problems == [rejected + ": did not connect; using the last good configuration"]
    # ... until a new configuration connects
    _write(path, new)
    node3, client3, _, _ = fx.make_node(config_path=path)
    node3.trial = 1
    node3.step()
    assert not _exists(rejected) and _read(good) == node3.raw


def test_a_config_that_connects_becomes_the_last_good_one():
    path = fx.TMP + "/mote_sec_proven.json"
    good = fx.TMP + "/mote_sec_proven.last-good.json"
    _rm(path, good)
    node, client, hw, clock = fx.make_node(config_path=path)
    node.trial = -1  # first boot: no last good configuration yet
    node.step()
    assert node.trial == 0 and _read(good) == node.raw
    assert not _exists(good + ".tmp") and not _exists(path)  # written atomically, once
    node2, client2, _, _ = fx.make_node(config_path=path)
    node2.step()  # trial 0: the same as the last good one, nothing written
    assert _writes(node2) == 0


def test_config_json_is_written_atomically():
    path = fx.TMP + "/mote_sec_atomic.json"
    _rm(path, path + ".tmp")
    from app import online

    online.save({"a": 1}, path)
    assert _read(path) == {"a": 1} and not _exists(path + ".tmp")


# --- 4. security settings fail closed ----------------------------------------------------


def test_wrong_security_settings_fail_closed():
    for broker, what in (
        ({"tls": "yes"}, "broker.tls: expected bool"),
        ({"port": "8883"}, "broker.port: expected int"),
        ({"port": 70000}, "broker.port: must be 0..65535"),
        ({"ca": 5}, "broker.ca: expected str"),
        ({"user": 1}, "broker.user: expected str"),
        ({"password": ["x"]}, "broker.password: expected str"),
        ({"cert": True}, "broker.cert: expected str"),
        ({"tls": True, "cert": "c.der"}, "broker.cert, broker.key: give both or neither"),
        ({"tls": True, "key": "k.der"}, "broker.cert, broker.key: give both or neither"),
        ({"ca": "ca.der"}, "need broker.tls true"),
        ({"tls": True, "ca": ""}, "broker.ca: must be a file path or null"),
    ):
        b = {"host": "h"}
        b.update(broker)
        e = raises(config.ConfigError, config.validate, {"broker": b})
        assert what in e.args[0], (broker, e.args[0])
    for key in ("short", 12345678901234567, ""):
        raises(config.ConfigError, config.validate, {"broker": {"host": "h"}, "cmd_key": key})
    cfg, problems = config.validate({"broker": {"host": "h"}, "cmd_key": KEY})
    assert cfg["cmd_key"] == KEY and problems == []


def test_client_certificate_and_key_reach_the_client():
    from app import setup

    b = {"host": "10.0.0.2", "tls": True, "ca": "ca.der", "cert": "c.der", "key": "k.der"}
    cfg, problems = config.validate({"broker": b})
    c = setup.make_client(cfg, b"mtls")
    assert c.ssl_params == {"cafile": "ca.der", "certfile": "c.der", "keyfile": "k.der"}


# --- 5. flash wear -----------------------------------------------------------------------


def test_a_config_change_to_the_same_value_writes_nothing():
    path = fx.TMP + "/mote_sec_same.json"
    _rm(path)
    node, client, hw, clock = fx.make_node(config_path=path)
    r = json.loads(node.commands.handle("config", b'{"arg": {"interval_s": 60, "qos": 1}}'))
    assert r["ok"] and r["changed"] == [] and _writes(node) == 0 and not _exists(path)


def test_a_thousand_config_commands_write_config_json_a_handful_of_times():
    path = fx.TMP + "/mote_sec_flood.json"
    _rm(path)
    node, client, hw, clock = fx.make_node(config_path=path)
    node.step()
    for i in range(1000):
        client.inject(DEV + "/cmd/config", b'{"arg": {"interval_s": %d}}' % (10 + i % 50))
        if i % 8 == 7:
            node.step()
            clock.advance(25)  # 1,000 commands in about 3 s
    fx.run_for(node, clock, 12_000)  # the last change is written when its gap ends
    assert _writes(node) == 2, _writes(node)
    assert _read(path)["interval_s"] == 10 + 999 % 50
    replies = client.on("/reply/config")
    assert len(replies) == 1000 and all(b'"ok": true' in p[1] for p in replies)
    assert json.loads(replies[0][1])["saved"] is True
    assert json.loads(replies[-1][1])["saved"] is False


def test_a_deferred_config_write_happens_at_a_clean_reboot():
    path = fx.TMP + "/mote_sec_defer.json"
    _rm(path)
    node, client, hw, clock = fx.make_node(config_path=path)
    node.start()
    node.commands.handle("config", b'{"arg": {"interval_s": 20}}')
    node.commands.handle("config", b'{"arg": {"interval_s": 21}}')
    assert _read(path)["interval_s"] == 20
    node.commands.handle("reboot", b"{}")
    raises(fx.FakeReboot, node.run)
    assert _read(path)["interval_s"] == 21 and _writes(node) == 2


# --- 6. signed commands ------------------------------------------------------------------


def _hex(b):
    return "".join("%02x" % x for x in b)


def test_hmac_sha256_matches_rfc_4231():
    mac = sign.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert _hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    mac = sign.hmac_sha256(
        b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"
    )
    assert _hex(mac) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    mac = sign.hmac_sha256(b"\x0b" * 20, b"Hi There")
    assert _hex(mac) == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"


def test_hmac_sha256_matches_cpython_s_hmac_module():
    if MICROPYTHON:
        skip("no hmac module on MicroPython (the RFC 4231 vectors run there)")
    import hashlib
    import hmac

    from support import Rng

    rng = Rng(11)
    for n in (0, 1, 16, 63, 64, 65, 200):
        key, msg = rng.bytes(n), rng.bytes(rng.below(300))
        want = hmac.new(key, msg, hashlib.sha256).hexdigest()
        assert _hex(sign.hmac_sha256(key, msg)) == want, n
    assert (
        sign.sign("k" * 16, "t/x", "body")
        == hmac.new(b"k" * 16, b"t/x\nbody", "sha256").hexdigest()
    )


def test_same_compares_whole_strings():
    assert sign.same("ab" * 32, "ab" * 32)
    assert not sign.same("ab" * 32, "ab" * 31 + "ac")
    assert not sign.same("ab", "abc")


def _signed(name, body, key=KEY, topic=None):
    text = json.dumps(body) if type(body) is not str else body
    sig = sign.sign(key, topic or DEV + "/cmd/" + name, text)
    return json.dumps({"body": text, "sig": sig}).encode()


def _now_ms():
    import time

    from app.telemetry import EPOCH_OFFSET_S

    return (int(time.time()) + EPOCH_OFFSET_S) * 1000


def test_signed_commands_run_and_bad_ones_are_refused_with_their_id():
    node, client, hw, clock = fx.make_node(cmd_key=KEY)
    t = _now_ms()

    def run(name, payload):
        return json.loads(node.commands.handle(name, payload))

    r = run("led", _signed("led", {"id": "s1", "t": t, "arg": "on"}))
    assert r == {"ok": True, "led": "on", "id": "s1"} and hw.led.lit
    assert node.cmd_t == t
    # unsigned, the id echoed when it can be read
    assert run("led", b'{"id": 7, "arg": "off"}') == {
        "ok": False,
        "error": "unsigned command",
        "id": 7,
    }
    assert run("led", b"off")["error"] == "unsigned command"
    # a wrong signature: another key, another topic, a changed body
    for payload in (
        _signed("led", {"id": "s2", "t": t + 1, "arg": "off"}, key="another-key-123456"),
        _signed("led", {"id": "s2", "t": t + 1, "arg": "off"}, topic="mote/other/cmd/led"),
        _signed("ping", {"id": "s2", "t": t + 1, "arg": "off"}),  # signed for another command
    ):
        assert run("led", payload) == {"ok": False, "error": "bad signature", "id": "s2"}
    # a replay: the same t, or an older one, under a new id
    assert run("led", _signed("led", {"id": "s3", "t": t, "arg": "off"}))["error"] == (
        "replayed or stale command"
    )
    assert run("led", _signed("led", {"id": "s4", "t": t - 5, "arg": "off"}))["id"] == "s4"
    # the clock is set (host): more than 300 s off is refused
    r = run("led", _signed("led", {"id": "s5", "t": t + 400_000, "arg": "off"}))
    assert r == {"ok": False, "error": "replayed or stale command", "id": "s5"}
    assert hw.led.lit  # nothing ran
    # id and t are required
    assert "needs" in run("led", _signed("led", {"id": "s6", "arg": "off"}))["error"]
    assert "needs" in run("led", _signed("led", {"t": t + 2, "arg": "off"}))["error"]
    assert run("led", _signed("led", {"id": "s7", "t": t + 3, "x": 1}))["error"].startswith(
        "unknown field"
    )
    r = run("led", _signed("led", {"id": "s8", "t": t + 4, "arg": "off"}))
    assert r["ok"] and not hw.led.lit


def test_a_redelivered_signed_command_gets_its_reply_again_without_running():
    node, client, hw, clock = fx.make_node(cmd_key=KEY)
    p = _signed("read", {"id": 1, "t": _now_ms()})
    first = node.commands.handle("read", p)
    assert node.commands.handle("read", p) == first and node.seq == 1


def test_a_refused_command_s_id_is_not_taken_from_the_owner():
    # Someone who guesses an id and sends it unsigned (or retained) first must not make the
    # owner's signed command with that id look like a redelivery.
    node, client, hw, clock = fx.make_node(cmd_key=KEY)
    assert json.loads(node.commands.handle("led", b'{"id": "x1", "arg": "on"}'))["ok"] is False
    assert (
        json.loads(node.commands.handle("led", b'{"id": "x1", "arg": "on"}', True))["id"] == "x1"
    )
    r = json.loads(
        node.commands.handle("led", _signed("led", {"id": "x1", "t": _now_ms(), "arg": "on"}))
    )
    assert r == {"ok": True, "led": "on", "id": "x1"} and hw.led.lit


def test_a_retained_signed_command_is_refused():
    node, client, hw, clock = fx.make_node(cmd_key=KEY)
    p = _signed("reboot", {"id": "x", "t": _now_ms()})
    r = json.loads(node.commands.handle("reboot", p, True))
    assert r == {"ok": False, "error": "retained command refused", "id": "x"} and not node._reboot
    assert node.cmd_t == 0


def test_the_last_signed_time_survives_a_reboot():
    node, client, hw, clock = fx.make_node(cmd_key=KEY)
    node.start()
    node.step()
    t = _now_ms()
    client.inject(DEV + "/cmd/reboot", _signed("reboot", {"id": "b1", "t": t}))
    raises(fx.FakeReboot, node.run)
    node2, client2, _, _ = fx.make_node(hw=hw, cmd_key=KEY)
    node2.start()
    assert node2.cmd_t == t
    r = json.loads(node2.commands.handle("ping", _signed("ping", {"id": "b2", "t": t})))
    assert r["error"] == "replayed or stale command"


def test_cmd_key_is_never_shown():
    node, client, hw, clock = fx.make_node(cmd_key=KEY)
    p = _signed("config", {"id": 1, "t": _now_ms()})
    raw = node.commands.handle("config", p)
    assert KEY.encode() not in raw and json.loads(raw)["config"]["cmd_key"] == "***"


def test_signing_loads_on_demand_and_is_forgotten():
    import sys

    node, client, hw, clock = fx.make_node(cmd_key=KEY)
    sys.modules.pop("app.sign", None)
    node.commands.handle("ping", _signed("ping", {"id": 1, "t": _now_ms()}))
    assert "app.sign" not in sys.modules


# --- 8. smaller findings -----------------------------------------------------------------


def test_the_led_state_is_retained_at_connect_and_on_every_change():
    node, client, hw, clock = fx.make_node()
    node.step()
    assert client.on(DEV + "/led") == [(DEV + "/led", b"off", True, 1)]
    client.inject(DEV + "/cmd/led", b"on")
    client.inject(DEV + "/cmd/led", b'{"arg": "blink"}')  # refused: no state change
    client.inject(DEV + "/cmd/led", b"toggle")
    node.step()
    assert [p[1] for p in client.on(DEV + "/led")] == [b"off", b"on", b"off"]


def test_a_command_rejected_before_it_runs_still_carries_its_id():
    node, client, hw, clock = fx.make_node()
    r = json.loads(node.commands.handle("ping", b'{"id": "q1", "argh": 1}'))
    assert r == {"ok": False, "error": "unknown field in command object: argh", "id": "q1"}
    e = raises(commands.CommandError, commands.parse, b'{"id": 5, "x": 1}')
    assert e.args[1] == 5


def test_an_oversize_command_is_reported_on_the_error_topic():
    node, client, hw, clock = fx.make_node()
    node.step()
    client.inject_oversize(DEV + "/cmd/config", 102_400)
    node.step()
    err = client.on(DEV + "/error")[-1]
    assert err[2] is False  # not retained: it is an event, not the config report
    assert json.loads(err[1]) == {
        "ok": False,
        "error": "command dropped: 102400 bytes, more than broker.rx_size (1024)",
    }
    node.step()
    assert len(client.on(DEV + "/error")) == 2  # once per dropped command (1: the clear)
