# hal.ntp: one bounded NTP attempt through the port's ntptime module (fake), failures as
# OSError, and a port without ntptime (the unix port really has none).
import fakes

from hal import NetworkError, ntp
from support import MICROPYTHON, raises


def test_sync_sets_host_and_timeout_then_the_clock():
    with fakes.installed() as f:
        assert ntp.sync("time.lan", 3) is True
        assert f.ntptime.calls == [("time.lan", 3)] and f.ntptime.sets == 1


def test_a_silent_server_or_failed_lookup_is_an_oserror():
    with fakes.installed() as f:
        f.ntptime.script.append(OSError(110))
        e = raises(OSError, ntp.sync, "time.lan", 1)
        assert e.args[0] == 110 and f.ntptime.sets == 0
        f.ntptime.script.append(OSError(-202))  # the ESP32's DNS failure
        raises(OSError, ntp.sync, "no.such.host", 1)


def test_a_bad_answer_is_a_network_error_not_a_crash():
    with fakes.installed() as f:
        for bad in (IndexError("list index out of range"), ValueError("short"), OverflowError()):
            f.ntptime.script.append(bad)
            e = raises(NetworkError, ntp.sync, "time.lan", 1)
            assert isinstance(e, OSError) and "ntp: bad answer" in e.args[1]


def test_no_ntptime_module_returns_false():
    with fakes.installed(without=("ntptime",)):
        assert ntp.sync("time.lan", 1) is False
    if MICROPYTHON:  # the unix port has no ntptime at all, fakes or not
        assert ntp.sync("time.lan", 1) is False
