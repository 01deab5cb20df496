# hal.network: the WiFi station on an ESP32: bring-up with retries and backoff, link
# status, loss detection and re-association, static IP, host name, power-down.
# Layer: lib/hal. `network` is imported by the constructor only.
from hal.errors import NetworkError
from mote.compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms

_ETIMEDOUT = const(110)
_POLL_MS = const(100)  # status poll period while associating
_ATTEMPT_MS = const(10_000)  # give up on one association after this long
_FEED_MS = const(1_000)  # up(): longest sleep between two calls of feed()
_BACKOFF_MIN_MS = const(500)
_BACKOFF_MAX_MS = const(8_000)

# WLAN.status() codes -> names, looked up by attribute in the constructor because the
# numbers are port-specific (ESP32: 200..212 are reasons from the IDF, 1000+ are states).
# Every code here ends an association attempt; others (CONNECTING, IDLE) mean "wait".
_FAILURES = (
    ("STAT_WRONG_PASSWORD", "wrong password"),
    ("STAT_NO_AP_FOUND", "no AP found"),
    ("STAT_CONNECT_FAIL", "connect failed"),
    ("STAT_ASSOC_FAIL", "association failed"),
    ("STAT_HANDSHAKE_TIMEOUT", "handshake timeout"),  # also a wrong password on ESP32
    ("STAT_BEACON_TIMEOUT", "beacon timeout"),  # the AP went away
)


class Network:
    """The WiFi station. cfg is config["wifi"]: ssid, password, hostname, static
    ({"ip", "netmask", "gateway", "dns"}), timeout_s (up()'s default time limit).

    clock and sleep (ticks_ms / sleep_ms by default) are for tests. Counters: attempts
    (association attempts), losses (connected -> not connected seen), reconnects."""

    def __init__(self, cfg, clock=ticks_ms, sleep=sleep_ms):
        import network

        self._network = network
        self._wlan = network.WLAN(network.STA_IF)
        self._ssid = cfg.get("ssid", "")
        self._password = cfg.get("password", "")
        self._hostname = cfg.get("hostname")
        self._static = cfg.get("static")
        self.timeout_ms = int(cfg.get("timeout_s", 15)) * 1000
        self._clock = clock
        self._sleep = sleep
        self._failures = {}
        for attr, why in _FAILURES:
            code = getattr(network, attr, None)
            if code is not None:
                self._failures[code] = why
        self._connecting = getattr(network, "STAT_CONNECTING", None)
        self._start_ms = 0
        self._was_up = False
        self._backoff_ms = _BACKOFF_MIN_MS
        self._next_try_ms = clock()
        self.attempts = 0
        self.losses = 0
        self.reconnects = 0
        self.last_status = None

    def _start(self):
        w = self._wlan
        w.active(True)
        if self._hostname:
            # Before connect(): DHCP sends the name it had at association time.
            self._network.hostname(self._hostname)
        if self._static:
            s = self._static
            w.ifconfig((s["ip"], s["netmask"], s["gateway"], s["dns"]))
        w.connect(self._ssid, self._password)
        self._start_ms = self._clock()
        self.attempts += 1

    def status_name(self):
        """The last association failure as text, or None."""
        if not self._ssid:
            return "no ssid configured"
        return self._failures.get(self.last_status)

    def up(self, timeout_ms=None, feed=None):
        """Connect, retrying with exponential backoff (0.5 s doubling to 8 s) until
        timeout_ms (default: wifi.timeout_s, 15 s). feed() (the watchdog's) is called at
        least every second while it waits, so a long timeout never starves the watchdog.
        Returns when connected; raises NetworkError(ETIMEDOUT, message naming the last
        failure) when it could not."""
        if timeout_ms is None:
            timeout_ms = self.timeout_ms
        if self.isconnected():
            return
        if not self._ssid:
            raise NetworkError(_ETIMEDOUT, "wifi: no ssid configured")
        start = self._clock()
        deadline = ticks_add(start, timeout_ms)
        backoff = _BACKOFF_MIN_MS
        self.last_status = None
        while True:
            if feed is not None:
                feed()
            self._start()
            attempt_end = ticks_add(self._clock(), _ATTEMPT_MS)
            while True:
                if self._wlan.isconnected():
                    self._connected()
                    return
                st = self._wlan.status()
                if st in self._failures:
                    self.last_status = st
                    break
                now = self._clock()
                if ticks_diff(deadline, now) <= 0 or ticks_diff(attempt_end, now) <= 0:
                    break
                if feed is not None:
                    feed()
                self._sleep(_POLL_MS)
            self._wlan.disconnect()
            left = ticks_diff(deadline, self._clock())
            if left <= 0:
                break
            self._pause(backoff if backoff < left else left, feed)
            if ticks_diff(deadline, self._clock()) <= 0:
                break
            backoff = backoff * 2 if backoff < _BACKOFF_MAX_MS // 2 else _BACKOFF_MAX_MS
        why = self.status_name()
        raise NetworkError(_ETIMEDOUT, "wifi: not connected: " + why if why else "wifi: timeout")

    def _pause(self, ms, feed):
        # Sleep ms in steps of at most _FEED_MS, feeding the watchdog before each.
        while ms > 0:
            if feed is not None:
                feed()
            step = _FEED_MS if ms > _FEED_MS else ms
            self._sleep(step)
            ms -= step

    def _connected(self):
        if self.losses > self.reconnects:
            self.reconnects += 1
        self._was_up = True
        self._backoff_ms = _BACKOFF_MIN_MS

    def isconnected(self):
        """True while associated with an IP address. Notices a lost link (counted in
        losses); call check() to re-associate without blocking."""
        up = self._wlan.isconnected()
        if self._was_up and not up:
            self._was_up = False
            self.losses += 1
            self._next_try_ms = self._clock()
        elif up and not self._was_up:
            self._connected()
        return up

    def check(self):
        """Non-blocking link maintenance for the main loop: when the link is down and the
        last attempt failed or ran out of time (10 s), start one association,
        at most once per backoff period (0.5 s doubling to 8 s). Returns isconnected().
        Never waits: the radio associates in the background."""
        if self.isconnected():
            return True
        if not self._ssid:
            return False
        now = self._clock()
        st = self._wlan.status()
        if st in self._failures:
            self.last_status = st
        elif st == self._connecting and ticks_diff(now, self._start_ms) < _ATTEMPT_MS:
            return False  # still associating (the ESP32 port also re-associates itself)
        if ticks_diff(now, self._next_try_ms) < 0:
            return False
        self._wlan.disconnect()
        self._start()
        self._next_try_ms = ticks_add(now, self._backoff_ms)
        if self._backoff_ms < _BACKOFF_MAX_MS:
            self._backoff_ms *= 2
        return False

    def rssi(self):
        """Signal strength in dBm, or None when not connected."""
        if not self._wlan.isconnected():
            return None
        try:
            return self._wlan.status("rssi")
        except OSError:
            return None

    def ip(self):
        """The station's IPv4 address as a str, or None when not connected."""
        if not self._wlan.isconnected():
            return None
        return self._wlan.ifconfig()[0]

    def down(self):
        """Disconnect and switch the radio off (before deep sleep)."""
        try:
            self._wlan.disconnect()
        except OSError:
            pass  # not connected: nothing to do
        self._wlan.active(False)
        self._was_up = False
