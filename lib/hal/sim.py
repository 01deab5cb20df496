# hal.sim: simulated twins of the network, sensors, LED and system for the `host` board.
# Layer: lib/hal. Imports nothing from the hardware; runs on CPython and the unix port.
# Settings come from config["sim"]; every twin has set_clock(fn) so tests drive time
# (fn returns milliseconds on the ticks_ms scale).
import gc
import math
import os

from hal.errors import DeepSleep, NetworkError, Reboot, SensorError
from hal.led import LED
from mote.compat import const, sleep_ms, ticks_diff, ticks_ms

_ETIMEDOUT = const(110)
_DAY_S = const(86_400)
_RTC_MAX = const(2048)
_HOST_MEM_FREE = const(1_000_000)  # CPython has no gc.mem_free(): a fixed, plausible value


class _Elapsed:
    """Milliseconds since start, from successive clock readings: it runs on across the
    ticks wrap, where a difference from the start tick would turn negative after half the
    period (6.2 days on a 32-bit port). Read it at least that often."""

    def __init__(self, fn):
        self._fn = fn
        self._last = fn()
        self._ms = 0

    def ms(self):
        now = self._fn()
        d = ticks_diff(now, self._last)
        if d > 0:
            self._ms += d
        self._last = now
        return self._ms


class SimNetwork:
    """Always up, except during config["sim"]["wifi_outages"]: a list of [at_s, for_s]
    (seconds after start, or after set_clock) and after down() until the next up()."""

    def __init__(self, config=None, clock=ticks_ms, sleep=sleep_ms):
        sim = (config or {}).get("sim", {})
        self._outages = [(int(a * 1000), int(f * 1000)) for a, f in sim.get("wifi_outages", ())]
        self._rssi = int(sim.get("rssi", -61))
        self._ip = sim.get("ip", "127.0.0.1")
        self._powered = True
        self._sleep = sleep
        self.set_clock(clock)
        self.ups = 0
        self.checks = 0

    def set_clock(self, fn, sleep=None):
        """Use fn() (ms) as the clock from now on; outages count from this moment."""
        self._clock = fn
        self._elapsed = _Elapsed(fn)
        if sleep is not None:
            self._sleep = sleep

    def elapsed_ms(self):
        return self._elapsed.ms()

    def _outage_left_ms(self):
        t = self.elapsed_ms()
        for at, length in self._outages:
            if at <= t < at + length:
                return at + length - t
        return 0

    def isconnected(self):
        return self._powered and not self._outage_left_ms()

    def up(self, timeout_ms=15000, feed=None):
        """Returns at once unless in an outage; then waits for its end if that is within
        timeout_ms, else raises NetworkError. Waits in steps of at most 1 s, calling
        feed() (the watchdog's) before each, as the real Network does."""
        self._powered = True
        self.ups += 1
        left = self._outage_left_ms()
        if not left:
            return
        self._pause(timeout_ms if left > timeout_ms else left, feed)
        if self._outage_left_ms():  # not over in time, or a second outage right after
            raise NetworkError(_ETIMEDOUT, "wifi: not connected: sim outage")

    def _pause(self, ms, feed):
        while ms > 0:
            if feed is not None:
                feed()
            step = 1000 if ms > 1000 else ms
            self._sleep(step)
            ms -= step

    def check(self):
        """Non-blocking, as the real one: powers the radio on and reports the link."""
        self._powered = True
        self.checks += 1
        return self.isconnected()

    def status_name(self):
        return "sim outage" if self._outage_left_ms() else None

    def rssi(self):
        return self._rssi if self.isconnected() else None

    def ip(self):
        return self._ip if self.isconnected() else None

    def down(self):
        self._powered = False


class SimSensor:
    """A plausible indoor climate: a daily sine (coldest at 05:00) plus seeded noise.

    config["sim"] keys: seed (1), start_hour (12: time of day at start), temp_c (21.0:
    daily mean), temp_swing_c (3.0), humidity_pct (45.0), pressure_hpa (1013.0), faults
    (a list of [at_s, for_s, kind]). inject(kind, count) adds faults by hand: "bus" and
    "crc" make read() raise SensorError, "stuck" repeats the previous reading."""

    name = "sim"
    FAULTS = ("bus", "crc", "stuck")

    def __init__(self, config=None, clock=ticks_ms):
        sim = (config or {}).get("sim", {})
        self._x = (int(sim.get("seed", 1)) & 0xFFFFFFFF) or 0x9E3779B9  # xorshift32 state
        self._start_s = int(sim.get("start_hour", 12)) * 3600
        self._t_mean = float(sim.get("temp_c", 21.0))
        self._t_swing = float(sim.get("temp_swing_c", 3.0))
        self._h_mean = float(sim.get("humidity_pct", 45.0))
        self._p_mean = float(sim.get("pressure_hpa", 1013.0))
        self._timed = []
        for at, length, kind in sim.get("faults", ()):
            self._check_kind(kind)
            self._timed.append((int(at * 1000), int(length * 1000), kind))
        self._manual = {"bus": 0, "crc": 0, "stuck": 0}
        self._last = None
        self.reads = 0
        self.set_clock(clock)

    def _check_kind(self, kind):
        if kind not in self.FAULTS:
            raise ValueError("unknown sim fault", kind)

    def set_clock(self, fn):
        self._clock = fn
        self._elapsed = _Elapsed(fn)

    def inject(self, kind, count=1):
        """The next count reads show fault kind (count -1: until clear())."""
        self._check_kind(kind)
        self._manual[kind] = count

    def clear(self):
        for k in self.FAULTS:
            self._manual[k] = 0

    def _fault(self, t_ms):
        for k in self.FAULTS:
            n = self._manual[k]
            if n:
                if n > 0:
                    self._manual[k] = n - 1
                return k
        for at, length, kind in self._timed:
            if at <= t_ms < at + length:
                return kind
        return None

    def _uniform(self):
        """Seeded noise, a float in [-1, 1): xorshift32, the same sequence on every
        interpreter for one seed."""
        x = self._x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._x = x
        return (x >> 8) / 8388608.0 - 1.0

    def read(self):
        """Returns {"temperature_c", "humidity_pct", "pressure_hpa"}; raises SensorError
        for an injected bus or CRC fault."""
        t_ms = self._elapsed.ms()
        fault = self._fault(t_ms)
        if fault == "bus":
            raise SensorError("sim: bus error", 5)
        if fault == "crc":
            raise SensorError("sim: CRC mismatch")
        if fault == "stuck" and self._last is not None:
            return dict(self._last)
        day_s = (self._start_s + t_ms // 1000) % _DAY_S
        # Coldest at 05:00, warmest at 17:00; humidity moves against temperature.
        phase = math.sin(2 * math.pi * (day_s - 11 * 3600) / _DAY_S)
        t = self._t_mean + self._t_swing * phase + 0.1 * self._uniform()
        h = self._h_mean - 2.0 * self._t_swing * phase + 0.5 * self._uniform()
        weather = math.sin(2 * math.pi * (t_ms // 1000) / (3 * _DAY_S))  # a 3-day swing
        p = self._p_mean + 4.0 * weather + 0.05 * self._uniform()
        h = 0.0 if h < 0 else (100.0 if h > 100 else h)
        self._last = {
            "temperature_c": round(t, 2),
            "humidity_pct": round(h, 1),
            "pressure_hpa": round(p, 2),
        }
        self.reads += 1
        return dict(self._last)


class SimLED(LED):
    """Records its state: value(), and changes (how many times it was switched)."""

    def __init__(self):
        self._lit = False
        self.changes = 0

    def _set(self, lit):
        if lit != self._lit:
            self.changes += 1
        self._lit = lit


class SimSystem:
    """The host's System: reset() raises Reboot, deep_sleep(ms) raises DeepSleep, the
    watchdog records, RTC memory is a file. config["sim"] keys: unique_id (hex str),
    rtc_file ("build/rtc.bin"), reset_cause ("power_on")."""

    def __init__(self, config=None):
        sim = (config or {}).get("sim", {})
        uid = sim.get("unique_id", "6d6f74650001")
        self._uid = bytes.fromhex(uid)
        self._rtc_file = sim.get("rtc_file", "build/rtc.bin")
        self._cause = sim.get("reset_cause", "power_on")
        self.wdt_timeout_ms = None
        self.wdt_feeds = 0

    def unique_id(self):
        return self._uid

    def mem_free(self):
        """Free heap in bytes after a full collection, as on a board."""
        f = getattr(gc, "mem_free", None)
        if f is None:
            return _HOST_MEM_FREE
        gc.collect()
        return f()

    def reset(self):
        raise Reboot()

    def deep_sleep(self, ms):
        raise DeepSleep(ms)

    def wdt_start(self, timeout_ms):
        self.wdt_timeout_ms = timeout_ms

    def wdt_feed(self):
        self.wdt_feeds += 1

    def rtc_read(self):
        try:
            with open(self._rtc_file, "rb") as f:
                return f.read()
        except OSError:
            return b""  # never written: empty, like RTC memory after power-on

    def rtc_write(self, data):
        if len(data) > _RTC_MAX:
            raise ValueError("RTC memory holds at most 2048 bytes", len(data))
        try:
            f = open(self._rtc_file, "wb")
        except OSError:  # its folder is missing: made at the first write only (heap)
            _makedirs(self._rtc_file.rpartition("/")[0])
            f = open(self._rtc_file, "wb")
        with f:
            f.write(data)

    def reset_cause(self):
        return self._cause


def _makedirs(path):
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d:
            try:
                os.mkdir(d)
            except OSError:
                pass  # exists already (EEXIST); a real failure shows in the open() after
