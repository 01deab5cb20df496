# app.node: the sensor node's main loop (layer: firmware). Brings the network up,
# connects with the Last Will "offline", announces "online", answers commands, publishes
# a reading every interval_s (kept in the offline ring while the link is down), feeds the
# watchdog and, in sleep mode "deep", runs one wake-read-publish-sleep cycle per boot.
#
# The run loop is the one place in the project where a broad `except Exception` logs,
# backs off and carries on: a node in a cupboard must survive anything it did not foresee.
# Everything it calls catches only what it can handle.
#
# RAM: only what every loop pass needs is here. Boot (app.setup, app.config), connecting
# and announcing (app.online, app.ha), NTP (app.clock), the commands (app.commands, per
# batch; app.admin for the rare ones) and the deep-sleep cycle (app.deep) are imported
# when needed and, except app.deep, forgotten again after use (hal.unload): each imported
# .mpy module costs heap for as long as it stays imported.
import gc
import json

from app import offline, telemetry
from app.log import log
from app.log import tick as _log_tick
from hal import unload
from mote import MQTTException
from mote.compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms

_POLL_MS = const(50)  # how often the loop looks for commands between readings
_BACKOFF_FIRST_MS = const(1000)
_INBOX_MAX = const(8)  # commands waiting to run; more in one poll are dropped and counted
_DRAIN_PER_STEP = const(8)  # queued readings sent per loop pass, so commands are not starved
_RTC_MAGIC = b"MOTE1"
_RTC_MAX = const(2048)  # ESP32 RTC slow memory available to MicroPython
_DEEP_RING_BYTES = const(768)  # offline ring in deep-sleep mode: must fit RTC memory with the rest
# A config.json that has not connected yet (trial) goes back to config.last-good.json
# after this many failed connects, or this long without one (WiFi that never joins).
_TRIAL_TRIES = const(5)
_TRIAL_S = const(300)


class Commands:
    """What the node keeps between commands: the recent ids (duplicate suppression, see
    app.commands) and counters. The code that runs commands, app.commands, is imported
    for each batch of them and forgotten again: it is not in the heap while the node
    reads, publishes or reconnects."""

    def __init__(self, node):
        self.node = node
        self.recent = []  # [key, reply bytes or None], oldest first
        self.handled = 0
        self.duplicates = 0
        self.failed = 0

    def handle(self, name, payload, retained=False):
        """One command's reply (app.commands.handle, imported for it)."""
        return self.node._aside("commands", "handle", name, payload, retained)

    def recent_keys(self):
        """The remembered command keys (saved across a reboot or deep sleep)."""
        return [e[0] for e in self.recent]


class Node:
    """One sensor node. hw: what hal.build() returned. make_client(cfg, client_id) builds
    the MQTT client (default: app.setup.make_client, the real one). clock/sleep default to
    ticks_ms/sleep_ms; tests pass fakes."""

    # Class defaults: the rarely set ones cost no instance slot until set. (app.admin
    # also sets cfg_writes and _saved_at: getattr reads them.)
    # trial (app.setup.boot): 0 when config.json is proven (it is the last good one); -1
    # when it is not but there is nothing to go back to; n > 0 when it goes back to
    # config.last-good.json if it does not connect (n - 1: the failed connects so far).
    trial = 0
    cmd_t = 0  # "t" of the last signed command accepted (app.sign); kept in RTC memory
    _save_due = None  # a deferred write of config.json is due then (app.admin)
    _dropped = 0  # the client's count of oversize messages dropped, last seen

    def __init__(
        self,
        cfg,
        raw,
        problems,
        hw,
        make_client=None,
        config_path="config.json",
        clock=ticks_ms,
        sleep=sleep_ms,
        sensor_error=OSError,
    ):
        self.cfg = cfg
        self.raw = raw
        self.problems = list(problems) + list(getattr(hw, "errors", ()))
        self.hw = hw
        self.led = hw.led
        self.config_path = config_path
        self._clock = clock
        self._sleep = sleep
        self._sensor_error = sensor_error
        self.deep = cfg["sleep"] == "deep"
        self.interval_s = cfg["interval_s"]
        self.device_id = cfg["device_id"] or "".join("%02x" % x for x in hw.system.unique_id())
        p = cfg["prefix"]
        base = p + "/" + self.device_id
        self.base = base
        self.t_status = (base + "/status").encode()
        self.t_telemetry = (base + "/telemetry").encode()
        self.t_error = (base + "/error").encode()
        self.cmd_filter = (base + "/cmd/+").encode()
        self._cmd_prefix = (base + "/cmd/").encode()
        self._reply_prefix = base + "/reply/"
        ring_bytes = cfg["offline_bytes"]
        if self.deep and ring_bytes > _DEEP_RING_BYTES:
            ring_bytes = _DEEP_RING_BYTES
        self.ring = offline.Ring(ring_bytes)
        self.commands = Commands(self)
        self.seq = 0
        self._secs = 0  # node time: whole seconds since boot (or since power-on, deep mode)
        self._ms = 0  # and the milliseconds below a second
        self._last_tick = clock()
        self._inbox = []
        self._reboot = False
        self._fields = None  # reading keys, for Home Assistant discovery
        self._net_ok = False
        self._wifi_why = None
        self._connected_once = False
        self._online = False
        self._connects = 0
        self._retry_at = self._last_tick
        self._backoff_ms = _BACKOFF_FIRST_MS
        self._next_read = self._last_tick
        self._session_blob = b""
        self._fresh_boot = True  # no state in RTC memory: power-on or first boot
        self._error_cleared = False
        self.loop_errors = 0
        self.cmds_dropped = 0
        self.published = 0
        self._ntp_host = cfg["ntp"]["host"] or None
        self._ntp_at = self._last_tick
        self._ntp_tries = 0
        self._ntp_secs = -1  # node time of the last NTP success (deep sleep: saved)
        self.ntp_syncs = 0
        client_id = cfg["broker"]["client_id"] or p + "-" + self.device_id
        if make_client is None:
            from app import setup

            make_client = setup.make_client
        self.client = make_client(cfg, client_id)
        self.client.set_callback(self._on_message)
        self.client.set_last_will(self.t_status, b"offline", True, 1)

    # --- time --------------------------------------------------------------------------

    def _tick(self):
        """Advance node time from the clock; returns the clock's now (ms ticks)."""
        now = self._clock()
        _log_tick()
        d = ticks_diff(now, self._last_tick)
        if d > 0:  # successive differences: node time goes on across the ticks wrap
            self._ms += d
        self._last_tick = now
        if self._ms >= 1000:
            self._secs += self._ms // 1000
            self._ms %= 1000
        return now

    def uptime_s(self):
        self._tick()
        return self._secs

    def _due(self, deadline, now):
        return ticks_diff(now, deadline) >= 0

    def sync_clock(self, now, retry=True):
        """NTP (ntp.host) when due and WiFi is up; see app.clock. Returns True when the
        clock was set."""
        if not self._ntp_host or not self._net_ok:
            return False
        if retry and not self._due(self._ntp_at, now):
            return False
        from app import clock

        try:
            return clock.sync(self, retry)
        finally:
            unload("app.clock")

    # --- persistent state (RTC memory) -------------------------------------------------

    def _rtc_save(self, with_session=False):
        head = {"seq": self.seq, "ids": self.commands.recent_keys(), "deep": self.deep}
        if self.deep:
            head["up"] = self._secs
            head["iv"] = self.interval_s
            head["nt"] = self._ntp_secs
        if self.cmd_t:
            head["ct"] = self.cmd_t
        data = json.dumps(head).encode()
        ring = b""
        if self.deep:  # app.deep stays loaded in deep-sleep mode
            from app import deep

            ring = deep.ring_bytes(self.ring)
        out = _RTC_MAGIC + _u16(len(data)) + data + _u16(len(ring)) + ring
        if with_session:
            from app import deep

            out += deep.session_save(self.client, _RTC_MAX - len(out))
        try:
            self.hw.system.rtc_write(out)
        except (OSError, ValueError) as e:
            log("could not save RTC state:", e)

    # --- MQTT --------------------------------------------------------------------------

    def _on_message(self, topic, msg):
        """Client callback: queue commands; they run in the loop, outside the client."""
        t = bytes(topic)
        n = len(self._cmd_prefix)
        if t[:n] != self._cmd_prefix:
            return
        if len(self._inbox) >= _INBOX_MAX:
            self.cmds_dropped += 1
            return
        # A retained command is the broker replaying an old message: it never runs.
        self._inbox.append((t[n:].decode(), bytes(msg), self.client.msg_retain))

    def _publish(self, topic, payload, retain=False, qos=0):
        """client.publish; returns False when the client dropped it (QoS 0 while
        disconnected) so the caller can keep it. Feeds the watchdog first: a publish
        waits up to broker.timeout_s for room in a full outbox."""
        self.hw.system.wdt_feed()
        if self.client.publish(topic, payload, retain, qos) < 0:
            return False
        self.published += 1
        return True

    def _fail(self, what, e, now):
        log(what, "failed:", _describe(e), "- retry in", self._backoff_ms // 1000, "s")
        self._retry_at = ticks_add(now, self._backoff_ms)
        self._backoff_ms = min(self._backoff_ms * 2, self.cfg["backoff_max_s"] * 1000)

    def _connect(self):
        """Connect and subscribe (app.online; raises OSError or MQTTException)."""
        self._aside("online", "connect")

    def _on_up(self):
        """A (re)connection: announce and report problems (app.online), then Home Assistant
        discovery (app.ha): one module after the other, never both in the heap at once."""
        self._aside("online", "announce")
        if self.cfg["ha_discovery"]:
            self._aside("ha", "announce")

    def _aside(self, name, what, *args):
        """Function what(self, *args) of module app.<name>, imported for the call and
        forgotten after it: connecting and announcing (app.online, app.ha), commands
        (app.commands) and the rare work of the loop (app.admin: a deferred config write,
        a dropped command, the rollback of a config that does not connect)."""
        # A collection here, high on the stack, frees what a collection forced deep inside
        # the import would not (stale pointers on the stack keep garbage alive): the
        # module's code then finds room on a small heap.
        gc.collect()
        name = "app." + name
        mod = __import__(name, None, None, (what,))
        try:
            return getattr(mod, what)(self, *args)
        finally:
            mod = None
            unload(name)

    def _rssi(self):
        return self.hw.network.rssi() if self._net_ok else None

    def link(self, now):
        """Make progress on the network and broker connection. True when telemetry can be
        published now. Raises nothing it expects (network and MQTT failures back off)."""
        net = self.hw.network
        if not net.isconnected():
            if self._net_ok:
                log("wifi down; readings are queued")
                self._net_ok = False
                self._online = False
                self._wifi_why = None
            # Never waits: the radio associates in the background, and check() starts a
            # new attempt (with its own backoff) when the last one failed.
            if not net.check():
                why = net.status_name()
                if why != self._wifi_why:
                    self._wifi_why = why
                    if why:
                        log("wifi: not connected:", why)
                return False
        if not self._net_ok:
            log("wifi up, ip", net.ip())
            self._net_ok = True
        if not self._connected_once:
            if not self._due(self._retry_at, now):
                return False
            self.hw.system.wdt_feed()
            try:
                self._connect()
            except (OSError, MQTTException) as e:
                self._fail("mqtt connect", e, self._clock())
                if self.trial > 0:
                    self.trial += 1
                return False
        else:
            try:
                self.client.check_msg()
            except (OSError, MQTTException) as e:
                self._fail("mqtt", e, self._clock())
            # The client drops a PUBLISH larger than its rx buffer with no callback; its
            # session counts them (no public counter: read the int, allocation-free).
            if self.client._s.dropped != self._dropped:
                self._aside("admin", "dropped")
        up = self.client.is_connected()
        # A reconnect inside one check_msg() call leaves is_connected() True: the count
        # tells (an attribute: stats() would build a dict on every pass).
        count = self.client.reconnects
        if up and (not self._online or count != self._connects):
            self._backoff_ms = _BACKOFF_FIRST_MS
            self._online = True
            self._connects = count
            self._on_up()
        elif not up and self._online:
            log("broker connection lost; readings are queued")
            self._online = False
        return self._online

    # --- readings ----------------------------------------------------------------------

    def take_reading(self):
        """Sample every sensor; returns the reading dict (seq already advanced)."""
        self.seq += 1
        r = telemetry.sample(
            self.hw.sensors, self.seq, self.uptime_s(), self._rssi(), self._sensor_error
        )
        if self._fields is None:
            self._fields = list(r)
        return r

    def deliver(self, reading, qos=None):
        """Publish a reading now if the link is up and nothing older waits; else keep it
        in the offline ring."""
        data = telemetry.encode(reading)
        if qos is None:
            qos = self.cfg["qos"]
        if self._online and not len(self.ring):
            try:
                if self._publish(self.t_telemetry, data, False, qos):
                    return
                self._online = False
            except OSError as e:
                log("publish failed, queued:", _describe(e))
                self._online = False
        lost = self.ring.push(reading["uptime_s"], data)
        if lost:
            log("offline queue full:", lost, "oldest dropped,", self.ring.dropped, "in all")

    def drain(self, qos=None, limit=_DRAIN_PER_STEP):
        """Publish queued readings, oldest first, each with its age; returns how many."""
        if qos is None:
            qos = self.cfg["qos"]
        sent = 0
        now_s = self.uptime_s()
        while self._online and len(self.ring) and sent < limit:
            t_s, data = self.ring.peek()
            try:
                ok = self._publish(
                    self.t_telemetry, telemetry.with_age(data, now_s - t_s), False, qos
                )
            except OSError as e:
                log("publish of a queued reading failed:", _describe(e))
                ok = False
            if not ok:
                self._online = False
                break
            self.ring.pop()
            sent += 1
        return sent

    def read_now(self):
        """The `read` command: a reading now, published (or queued) like any other."""
        r = self.take_reading()
        self.deliver(r)
        return r

    # --- commands ----------------------------------------------------------------------

    def run_commands(self):
        """Answer every queued command on <p>/<id>/reply/<name> (app.commands.answer,
        imported for the batch and forgotten after it)."""
        if self._inbox:
            self._aside("commands", "answer")

    def set_interval(self, s):
        self.interval_s = s
        self._next_read = ticks_add(self._tick(), s * 1000)

    def request_reboot(self):
        self._reboot = True

    # --- the loop ----------------------------------------------------------------------

    def start(self):
        """Once per boot: restore RTC state, start the watchdog, log what runs."""
        from app import setup

        try:
            setup.start(self)
        finally:
            unload("app.setup")
            unload("app.config")

    def step(self):
        """One pass of the loop: feed the watchdog, keep the link, sync the clock, run
        commands, drain the offline ring, take a reading when due. Returns ms until the
        next pass. The watchdog is fed again before every call that may block (see
        config.blocking_ms), so no pass starves it."""
        feed = self.hw.system.wdt_feed
        feed()
        now = self._tick()
        if self.trial > 0 and (self.trial > _TRIAL_TRIES or self._secs >= _TRIAL_S):
            self._aside("admin", "rollback")
        if self._save_due is not None and self._due(self._save_due, now):
            self._aside("admin", "save_pending")
        self.link(now)
        if self._ntp_host and self._net_ok and self._due(self._ntp_at, now):
            self.sync_clock(now)
        self.run_commands()
        if self._online and len(self.ring):
            n = self.drain()
            if n:
                log("sent", n, "queued reading(s);", len(self.ring), "left")
        now = self._tick()
        if self._due(self._next_read, now):
            feed()
            r = self.take_reading()
            self.deliver(r)
            if "error" in r:
                log("reading", r["seq"], "error:", r["error"])
            self._next_read = ticks_add(self._next_read, self.interval_s * 1000)
            if ticks_diff(self._next_read, now) <= 0:  # fell behind (a long outage)
                self._next_read = ticks_add(now, self.interval_s * 1000)
            self._rtc_save()
        wait = ticks_diff(self._next_read, self._tick())
        return _POLL_MS if wait > _POLL_MS else max(wait, 0)

    def shutdown(self):
        """Clean stop: a deferred config write, status offline (retained), wait briefly
        for acks, disconnect."""
        if self._save_due is not None:  # not app.admin at every deep-sleep wake
            self._aside("admin", "save_pending")
        self._rtc_save(with_session=self.deep)
        if not self._online:
            return
        try:
            self._publish(self.t_status, b"offline", True, 1)
            self.client.flush(2000)
            self.client.disconnect()
        except (OSError, MQTTException) as e:
            log("clean disconnect failed:", _describe(e))
        self._online = False

    def run(self):
        """The main loop. Returns only through hal.Reboot on the host (a device resets)."""
        self.start()
        if self.deep:
            from app import deep

            return deep.cycle(self)
        while True:
            wait = _POLL_MS
            try:
                wait = self.step()
            except Exception as e:  # the firmware's one broad catch: log, back off, go on
                self.loop_errors += 1
                log("loop error:", _describe(e))
                self._sleep(min(self._backoff_ms, 5000))
                self._backoff_ms = min(self._backoff_ms * 2, self.cfg["backoff_max_s"] * 1000)
            if self._reboot:
                log("rebooting")
                self.shutdown()
                self.hw.system.reset()
            if wait:
                self._sleep(wait)


def _u16(n):
    return bytes((n >> 8, n & 0xFF))


def _describe(e):
    return type(e).__name__ + (": " + " ".join(str(a) for a in e.args) if e.args else "")


def main(config_path="config.json"):
    """app.run(config_path), kept for callers of the old entry point. app.run itself loads
    this module only after boot, which leaves the heap less cut up."""
    from app import run

    return run(config_path)
