# hal.network: WiFi bring-up with retries and backoff, timeouts, loss and re-association,
# static IP and host name, power-down, all on the fake `network` with a stepped clock.
import fakes

from hal import NetworkError
from hal.network import Network
from mote.compat import ticks_diff
from support import StepClock, raises

CFG = {"ssid": "home", "password": "secret"}


def _net(f, cfg=CFG):
    clk = StepClock()
    return Network(cfg, clock=clk.now_ms, sleep=clk.sleep), clk, f.network.WLAN(0)


def test_up_connects_on_the_first_try():
    with fakes.installed() as f:
        net, clk, w = _net(f)
        net.up()
        assert net.isconnected() and net.attempts == 1
        assert w.connects == [("home", "secret")]
        assert net.ip() == "192.168.1.50" and net.rssi() == -61
        assert sum(clk.sleeps) < 1000


def test_up_retries_with_exponential_backoff():
    with fakes.installed() as f:
        f.network.script.extend([f.network.STAT_NO_AP_FOUND] * 3)
        net, clk, w = _net(f)
        net.up(timeout_ms=15000)
        assert net.isconnected() and net.attempts == 4
        backoffs = [ms for ms in clk.sleeps if ms >= 500]
        assert backoffs == [500, 1000, 1000, 1000]  # 2 s waited in 1 s steps (watchdog)
        assert w.disconnects == 3  # each failed attempt is cleaned up


def test_up_gives_up_at_the_timeout_with_the_reason():
    with fakes.installed() as f:
        net, clk, w = _net(f, {"ssid": "home", "password": "wrong"})
        t0 = clk.now_ms()
        e = raises(NetworkError, net.up, 5000)
        assert isinstance(e, OSError) and e.args[0] == 110
        assert e.args[1] == "wifi: not connected: wrong password"
        assert ticks_diff(clk.now_ms(), t0) <= 5000
        assert net.attempts >= 3 and not net.isconnected()


def test_up_feeds_the_watchdog_at_least_every_second_however_long_it_waits():
    with fakes.installed() as f:
        f.network.in_range = False
        net, clk, w = _net(f, dict(CFG, timeout_s=300))
        feeds = []

        def feed():
            feeds.append(clk.now_ms())

        t0 = clk.now_ms()
        raises(NetworkError, net.up, 300_000, feed)
        took = ticks_diff(clk.now_ms(), t0)
        assert 299_000 <= took <= 300_000
        gaps = [ticks_diff(feeds[i + 1], feeds[i]) for i in range(len(feeds) - 1)]
        assert ticks_diff(feeds[0], t0) == 0 and ticks_diff(clk.now_ms(), feeds[-1]) <= 1000
        assert max(gaps) <= 1000, max(gaps)
        assert net.attempts > 30  # kept retrying, with backoff up to 8 s


def test_an_attempt_that_hangs_is_abandoned_and_retried():
    with fakes.installed() as f:
        f.network.hangs = 1
        net, clk, w = _net(f, dict(CFG, timeout_s=30))
        net.up()
        assert net.attempts == 2 and net.isconnected()


def test_no_ssid_is_a_network_error():
    with fakes.installed() as f:
        net, clk, w = _net(f, {})
        e = raises(NetworkError, net.up)
        assert "ssid" in e.args[1]


def test_hostname_and_static_address_are_set_before_connecting():
    static = {"ip": "10.0.0.9", "netmask": "255.0.0.0", "gateway": "10.0.0.1", "dns": "10.0.0.1"}
    with fakes.installed() as f:
        net, clk, w = _net(f, dict(CFG, hostname="mote-1", static=static))
        net.up()
        assert w.hostname_at_connect == "mote-1"
        assert w.static == ("10.0.0.9", "255.0.0.0", "10.0.0.1", "10.0.0.1")
        assert net.ip() == "10.0.0.9"


def test_a_lost_link_is_noticed_and_check_reassociates():
    with fakes.installed() as f:
        net, clk, w = _net(f)
        net.up()
        w.drop()
        assert not net.isconnected() and net.losses == 1
        assert net.rssi() is None and net.ip() is None
        assert not net.check()  # starts an association
        assert len(w.connects) == 2
        for _ in range(5):
            if net.check():
                break
            clk.advance(100)
        assert net.isconnected() and net.reconnects == 1 and net.losses == 1


def test_check_backs_off_while_the_ap_is_away():
    with fakes.installed() as f:
        net, clk, w = _net(f)
        net.up()
        w.drop()
        f.network.in_range = False
        starts = []
        for _ in range(300):  # 30 s in 100 ms steps
            n = len(w.connects)
            net.check()
            if len(w.connects) > n:
                starts.append(clk.now_ms())
            clk.advance(100)
        gaps = [ticks_diff(starts[i + 1], starts[i]) for i in range(len(starts) - 1)]
        assert gaps[:4] == [500, 1000, 2000, 4000]
        assert max(gaps) <= 8000
        f.network.in_range = True
        for _ in range(120):
            if net.check():
                break
            clk.advance(100)
        assert net.isconnected()


def test_down_powers_the_radio_off():
    with fakes.installed() as f:
        net, clk, w = _net(f)
        net.up()
        net.down()
        assert not w.active() and not net.isconnected()
        net.up()
        assert w.active() and net.isconnected()
