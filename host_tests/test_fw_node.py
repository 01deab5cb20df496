# firmware/app/node.py on fakes: connect and announce, telemetry at the interval, commands
# answered, offline queueing in order, WiFi loss, reboot, the broad catch, deep sleep.
import json

import test_fw_fakes as fx  # first: it puts firmware/ on sys.path

# isort: split
from mote.compat import ticks_diff
from support import raises


def _tele(client):
    return [json.loads(p[1]) for p in client.on("/telemetry")]


def test_first_step_connects_announces_and_subscribes():
    node, client, hw, clock = fx.make_node(interval_s=5)
    node.start()
    node.step()
    assert client.connects == 1 and client.clean is False
    assert client.will == ("mote/deadbeef/status", b"offline", True, 1)
    assert client.subs == [("mote/deadbeef/cmd/+", 1)]
    assert client.published[0] == ("mote/deadbeef/status", b"online", True, 1)
    assert hw.system.wdt == 30000 and hw.system.feeds >= 1


def test_home_assistant_discovery_is_retained_and_can_be_switched_off():
    node, client, hw, clock = fx.make_node()
    node.step()
    disc = [p for p in client.published if p[0].startswith("homeassistant/")]
    assert len(disc) == 5  # temperature, humidity, rssi, uptime and the LED switch
    assert all(p[2] is True for p in disc)
    topics = [p[0] for p in disc]
    assert "homeassistant/switch/mote_deadbeef/led/config" in topics
    node, client, hw, clock = fx.make_node(ha_discovery=False)
    node.step()
    assert not [p for p in client.published if p[0].startswith("homeassistant/")]


def test_telemetry_every_interval_with_increasing_seq():
    node, client, hw, clock = fx.make_node(interval_s=5)
    node.start()
    fx.run_for(node, clock, 20_000)
    t = _tele(client)
    assert [r["seq"] for r in t] == [1, 2, 3, 4]
    assert [r["uptime_s"] for r in t] == [0, 5, 10, 15]
    assert t[0]["temperature_c"] == 21.5 and t[0]["rssi"] == -61
    assert all(p[3] == 1 and p[2] is False for p in client.on("/telemetry"))


def test_telemetry_qos_follows_config():
    node, client, hw, clock = fx.make_node(qos=0)
    node.step()
    assert client.on("/telemetry")[0][3] == 0


def test_sensor_error_is_reported_in_the_reading():
    hw = fx.FakeHW()
    hw.sensors[0].fail = fx.FakeSensorError("sim: CRC mismatch")
    node, client, hw, clock = fx.make_node(hw=hw)
    node.step()
    r = _tele(client)[0]
    assert r["error"] == "sim: CRC mismatch" and r["seq"] == 1


def test_commands_are_answered_on_reply_topics():
    node, client, hw, clock = fx.make_node(interval_s=60)
    node.step()
    client.inject("mote/deadbeef/cmd/ping", b"{}")
    client.inject("mote/deadbeef/cmd/led", b"on")
    client.inject("mote/deadbeef/cmd/nope", b"{}")
    client.inject("mote/other/cmd/ping", b"{}")
    client.inject("mote/deadbeef/cmd/interval", b"bad")
    node.step()
    assert json.loads(client.on("/reply/ping")[0][1])["ok"] is True
    assert json.loads(client.on("/reply/led")[0][1]) == {"ok": True, "led": "on"}
    assert json.loads(client.on("/reply/nope")[0][1])["ok"] is False
    assert json.loads(client.on("/reply/interval")[0][1])["ok"] is False
    assert len([p for p in client.published if "/reply/" in p[0]]) == 4
    assert client.on("/reply/ping")[0][3] == 1


def test_a_command_that_arrives_just_before_a_link_loss_is_still_answered():
    # The command came in; the link broke before its reply went out. The reply is QoS 1:
    # the client keeps it and sends it once the node is connected again.
    node, client, hw, clock = fx.make_node(interval_s=60)
    node.step()
    client.cb(b"mote/deadbeef/cmd/ping", b"{}")  # received, not yet answered
    client.broker_up = False
    node.step()  # notices the loss, then runs the command
    assert not node._online
    assert client.on("/reply/ping") == [] and len(client.queued) == 1
    client.broker_up = True
    fx.run_for(node, clock, 2_000)
    assert json.loads(client.on("/reply/ping")[0][1])["ok"] is True


def test_read_command_publishes_telemetry_now():
    node, client, hw, clock = fx.make_node(interval_s=60)
    node.step()
    client.inject("mote/deadbeef/cmd/read", b"{}")
    node.step()
    assert [r["seq"] for r in _tele(client)] == [1, 2]


def test_interval_command_reschedules():
    node, client, hw, clock = fx.make_node(interval_s=60)
    node.step()
    client.inject("mote/deadbeef/cmd/interval", b"2")
    fx.run_for(node, clock, 7_000)
    assert len(_tele(client)) == 4  # at 0, then 2, 4, 6 s


def test_too_many_commands_at_once_are_dropped_and_counted():
    node, client, hw, clock = fx.make_node()
    node.step()
    for _ in range(12):
        client.inject("mote/deadbeef/cmd/ping", b"{}")
    node.step()
    assert len(client.on("/reply/ping")) == 8 and node.cmds_dropped == 4


def test_broker_down_queues_readings_and_sends_them_in_order_with_age():
    node, client, hw, clock = fx.make_node(interval_s=1)
    node.start()
    fx.run_for(node, clock, 2_500)
    client.broker_up = False
    fx.run_for(node, clock, 5_000)
    assert len(node.ring) >= 4
    client.broker_up = True
    fx.run_for(node, clock, 3_000)
    t = _tele(client)
    seqs = [r["seq"] for r in t]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert len(seqs) >= 10
    late = [r for r in t if "age_s" in r]
    assert len(late) >= 4 and all(r["age_s"] >= 1 for r in late)
    # the broker's will said offline; the node says online again after reconnecting
    assert len([p for p in client.on("/status") if p[1] == b"online"]) == 2
    assert len(node.ring) == 0


def test_offline_ring_drops_oldest_when_full():
    node, client, hw, clock = fx.make_node(interval_s=1, offline_bytes=600)
    node.step()
    client.broker_up = False
    fx.run_for(node, clock, 30_000)
    assert node.ring.dropped > 0
    client.broker_up = True
    fx.run_for(node, clock, 3_000)
    seqs = [r["seq"] for r in _tele(client)]
    assert seqs == sorted(seqs) and seqs[0] == 1
    assert seqs[1] > 2  # the oldest queued ones were dropped
    assert json.loads(node.commands.handle("info", b"{}"))["dropped"] == node.ring.dropped


def test_first_connect_failing_backs_off_and_retries():
    client = fx.FakeClient()
    client.broker_up = False
    node, client, hw, clock = fx.make_node(client=client, interval_s=1)
    fx.run_for(node, clock, 4_000)
    assert client.connects == 0 and len(node.ring) == 4
    assert node._backoff_ms > 1000
    client.broker_up = True
    fx.run_for(node, clock, 10_000)
    assert client.connects == 1
    seqs = [r["seq"] for r in _tele(client)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_wifi_outage_leaves_the_client_alone_and_queues():
    node, client, hw, clock = fx.make_node(interval_s=1)
    node.step()
    hw.network.connected = False
    checks = client.connects
    fx.run_for(node, clock, 5_000)
    assert client.connects == checks
    assert len(node.ring) >= 4
    assert hw.network.checks >= 2 and hw.network.ups == 0  # retried, never blocking
    hw.network.connected = True
    fx.run_for(node, clock, 3_000)
    seqs = [r["seq"] for r in _tele(client)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 7


def test_reboot_command_says_offline_then_resets():
    node, client, hw, clock = fx.make_node()
    node.start()
    node.step()
    client.inject("mote/deadbeef/cmd/reboot", b'{"id": 3}')
    raises(fx.FakeReboot, node.run)
    assert json.loads(client.on("/reply/reboot")[0][1])["ok"] is True
    assert client.published[-1] == ("mote/deadbeef/status", b"offline", True, 1)
    assert client.disconnects == 1
    # the command id survives the reboot: a redelivery is not executed again
    node2, client2, _, _ = fx.make_node(hw=hw)
    node2.start()
    assert node2.seq == node.seq
    r = json.loads(node2.commands.handle("reboot", b'{"id": 3}'))
    assert r["duplicate"] is True and not node2._reboot


def test_main_loop_logs_and_carries_on_after_any_error():
    node, client, hw, clock = fx.make_node(interval_s=1)
    passes = [0]

    def sleep(ms):
        clock.advance(ms)
        passes[0] += 1
        if passes[0] == 3:
            client.check_error = RuntimeError("boom")
        if passes[0] > 200:
            raise fx.StopLoop()

    node._sleep = sleep
    raises(fx.StopLoop, node.run)
    assert node.loop_errors == 1
    assert len(_tele(client)) >= 3


def test_seq_continues_after_a_reboot():
    node, client, hw, clock = fx.make_node(interval_s=1)
    node.start()
    fx.run_for(node, clock, 3_500)
    node2, client2, _, clock2 = fx.make_node(hw=hw, interval_s=1)
    node2.start()
    node2.step()
    assert _tele(client2)[0]["seq"] == node.seq + 1
    assert _tele(client2)[0]["uptime_s"] == 0


def test_deep_sleep_cycle_publishes_then_sleeps():
    client = fx.FakeClient()
    client.session = b"SESSION"
    node, client, hw, clock = fx.make_node(client=client, sleep="deep", interval_s=30)
    node.start()
    e = raises(fx.FakeDeepSleep, node.run)
    assert e.ms == 30_000
    t = _tele(client)
    assert len(t) == 1 and t[0]["seq"] == 1
    assert client.on("/telemetry")[0][3] == 1  # QoS 1 in deep-sleep mode
    assert client.disconnects == 1 and hw.network.downs == 1
    assert hw.system.rtc.startswith(b"MOTE1") and hw.system.rtc.endswith(b"SESSION")
    # next wake: seq and node time continue, the session is handed back to the client
    client2 = fx.FakeClient()
    node2, client2, _, _ = fx.make_node(hw=hw, client=client2, sleep="deep", interval_s=30)
    node2.start()
    raises(fx.FakeDeepSleep, node2.run)
    assert client2.restored == b"SESSION"
    r = _tele(client2)[0]
    assert r["seq"] == 2 and r["uptime_s"] == 30
    assert not [p for p in client2.published if p[0].startswith("homeassistant/")]


def test_deep_sleep_without_wifi_keeps_the_reading_for_the_next_wake():
    hw = fx.FakeHW()
    hw.network.connected = False
    node, client, hw, clock = fx.make_node(hw=hw, sleep="deep", interval_s=10)
    node.start()
    raises(fx.FakeDeepSleep, node.run)
    assert client.published == []
    hw.network.connected = True
    node2, client2, _, _ = fx.make_node(hw=hw, sleep="deep", interval_s=10)
    node2.start()
    raises(fx.FakeDeepSleep, node2.run)
    t = _tele(client2)
    assert [r["seq"] for r in t] == [1, 2]
    assert t[0]["age_s"] == 10


def test_deep_sleep_answers_queued_commands_before_sleeping():
    client = fx.FakeClient()
    client.inject("mote/deadbeef/cmd/interval", b"120")
    node, client, hw, clock = fx.make_node(client=client, sleep="deep", interval_s=30)
    node.start()
    e = raises(fx.FakeDeepSleep, node.run)
    assert json.loads(client.on("/reply/interval")[0][1])["ok"] is True
    assert e.ms == 120_000


def test_config_problems_are_reported_retained_and_cleared_when_fixed():
    node, client, hw, clock = fx.make_node(bogus=1)
    node.step()
    err = client.on("/error")
    assert err[0][2] is True and "bogus: unknown setting" in json.loads(err[0][1])["error"]
    node, client, hw, clock = fx.make_node()
    node.step()
    assert client.on("/error") == [("mote/deadbeef/error", b"", True, 1)]


def test_main_reports_an_unusable_config_and_returns_instead_of_crash_looping():
    import sys

    import app

    board_dir = fx.ROOT + "/boards/host"
    if board_dir not in sys.path:
        sys.path.append(board_dir)
    path = fx.TMP + "/mote_fw_main_bad.json"
    with open(path, "w") as f:
        f.write('{"wifi": {"ssid": "x", "password": "hunter2"}}')
    assert app.run(path) == 1  # main.py makes it the host's exit status
    assert app.run(fx.TMP + "/mote_fw_no_such_config.json") == 1


# --- ESP32 facts: never block past the watchdog, NTP, the ticks wrap ------------------


def _steps(node, clock, every_ms, n):
    """n loop passes, every_ms of fake time apart (for hours and days of node time)."""
    for _ in range(n):
        node.step()
        clock.advance(every_ms)


def test_wifi_down_never_blocks_the_loop_and_readings_keep_their_cadence():
    hw = fx.FakeHW()
    hw.network.connected = False
    node, client, hw, clock = fx.make_node(hw=hw, interval_s=1)
    node.start()
    fx.run_for(node, clock, 10_000)
    assert hw.network.ups == 0 and hw.network.checks > 100  # check() every pass
    assert [node.ring.peek()[0]] == [0] and len(node.ring) == 10
    hw.network.connected = True
    fx.run_for(node, clock, 1_000)
    t = _tele(client)
    assert [r["uptime_s"] for r in t] == list(range(11))
    assert [r.get("age_s", 0) for r in t][:3] == [10, 9, 8]


def test_the_watchdog_is_fed_before_every_call_that_may_block():
    # Each blocking call takes most of the 30 s watchdog; one feed per loop pass would
    # let connect + NTP + a publish with a full outbox run 60 s without a feed.
    import fakes

    node, client, hw, clock = fx.make_node(interval_s=1, ntp={"host": "10.0.0.1"})
    slow = fx.FakeClient.publish

    def publish(topic, msg, retain=False, qos=0):
        clock.advance(20_000)
        return slow(client, topic, msg, retain, qos)

    connect = fx.FakeClient.connect

    def slow_connect(clean_session=True, timeout=None):
        clock.advance(20_000)
        return connect(client, clean_session, timeout)

    client.publish = publish
    client.connect = slow_connect
    client.broker_up = False
    with fakes.installed() as f:
        f.ntptime.hook = lambda: clock.advance(20_000)
        node.start()
        fx.run_for(node, clock, 3_000)  # readings queue up while the broker is away
        client.broker_up = True
        client.inject("mote/deadbeef/cmd/ping", b"{}")
        fx.run_for(node, clock, 300_000)
    # every publish takes 20 s here, the announce's (status, LED state, discovery) too
    assert f.ntptime.sets == 1 and len(_tele(client)) >= 5
    times = hw.system.feed_times
    gaps = [ticks_diff(times[i + 1], times[i]) for i in range(len(times) - 1)]
    assert max(gaps) < 30_000, max(gaps)


def test_ntp_sets_the_clock_after_wifi_is_up_then_once_a_day():
    import fakes

    node, client, hw, clock = fx.make_node(interval_s=3600, ntp={"host": "time.lan"})
    with fakes.installed() as f:
        fed = []
        f.ntptime.hook = lambda: fed.append(hw.system.feeds)
        node.start()
        _steps(node, clock, 3_600_000, 30)  # 30 h
        assert f.ntptime.calls == [("time.lan", 2), ("time.lan", 2)]
        assert node.ntp_syncs == 2
        assert fed[0] > 0


def test_ntp_failures_are_retried_three_times_a_round_then_hourly():
    import fakes

    node, client, hw, clock = fx.make_node(interval_s=60, ntp={"host": "time.lan"})
    with fakes.installed() as f:
        f.ntptime.script.extend([OSError(110)] * 5)
        node.start()
        at = []
        f.ntptime.hook = lambda: at.append(node.uptime_s())
        _steps(node, clock, 1_000, 3_700 + 60)
        assert at == [0, 30, 60, 3660, 3690, 3720]  # the sixth attempt succeeded
        assert node.ntp_syncs == 1
        assert node.loop_errors == 0


def test_ntp_without_the_ntptime_module_is_reported_once_and_not_retried():
    import fakes

    node, client, hw, clock = fx.make_node(interval_s=1)
    with fakes.installed(without=("ntptime",)):
        node.start()
        fx.run_for(node, clock, 3_000)
    assert node._ntp_host is None and node.ntp_syncs == 0 and node.loop_errors == 0
    t = _tele(client)
    assert len(t) == 3 and t[0]["ts"] > 1_700_000_000  # the host's clock is set anyway


def test_ntp_off_never_imports_ntptime():
    import fakes

    node, client, hw, clock = fx.make_node(ntp={"host": None})
    with fakes.installed() as f:
        node.step()
    assert f.ntptime.calls == []


def test_node_time_and_cadence_survive_many_ticks_wraps():
    # 20 days at one reading an hour: the fake clock starts 1 s before the wrap and wraps
    # every 12.4 days (2**30 ms); uptime must keep growing, never going back.
    node, client, hw, clock = fx.make_node(interval_s=3600)
    node.start()
    _steps(node, clock, 3_600_000, 20 * 24)
    ups = [r["uptime_s"] for r in _tele(client)]
    assert ups == [3600 * i for i in range(20 * 24)]
    assert node.uptime_s() == 20 * 86400
    assert hw.system.feeds >= 20 * 24


def test_deep_sleep_wifi_bring_up_feeds_the_watchdog_and_syncs_the_clock_at_power_on():
    import fakes

    with fakes.installed() as f:
        node, client, hw, clock = fx.make_node(sleep="deep", ntp={"host": "time.lan"})
        node.start()
        raises(fx.FakeDeepSleep, node.run)
        assert hw.network.up_feed == hw.system.wdt_feed
        assert f.ntptime.sets == 1
        # next wake: the clock was set less than a day ago, no query
        node2, client2, _, _ = fx.make_node(hw=hw, sleep="deep", ntp={"host": "time.lan"})
        node2.start()
        raises(fx.FakeDeepSleep, node2.run)
        assert f.ntptime.sets == 1


# --- RAM: what runs once or rarely does not stay imported --------------------------------


def test_boot_and_rare_commands_leave_no_module_behind():
    import sys

    import fakes

    node, client, hw, clock = fx.make_node(interval_s=1, ntp={"host": "time.lan"})
    with fakes.installed():
        node.start()
        fx.run_for(node, clock, 1_500)
        for name, arg in (("info", b"{}"), ("config", b"{}"), ("interval", b"2"), ("ping", b"{}")):
            client.inject("mote/deadbeef/cmd/" + name, arg)
        client.inject("mote/deadbeef/cmd/config", b'{"arg": {"qos": 0}}')
        fx.run_for(node, clock, 500)
    replies = [json.loads(p[1]) for p in client.published if "/reply/" in p[0]]
    assert len(replies) == 5 and all(r["ok"] for r in replies), replies
    assert node.ntp_syncs == 1 and node.cfg["qos"] == 0 and node.interval_s == 2
    left = [m for m in fx.ON_DEMAND if m in sys.modules]
    assert left == [], left
    import app

    import hal

    gone = ("config", "setup", "admin", "info", "ha", "online", "clock")
    assert not [n for n in gone if n in dir(app)]
    assert "builder" not in dir(hal) and "ntp" not in dir(hal)


def test_a_rare_command_gives_its_heap_back():
    from support import only_micropython

    only_micropython("gc.mem_alloc")
    import gc

    node, client, hw, clock = fx.make_node(interval_s=60)
    node.start()
    node.step()

    def info():
        client.inject("mote/deadbeef/cmd/info", b"{}")
        node.step()
        client.published.clear()

    info()  # the first call interns app.admin's names for good
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(5):
        info()
    gc.collect()
    assert gc.mem_alloc() - before < 512, gc.mem_alloc() - before  # app.admin is ~2 KB
