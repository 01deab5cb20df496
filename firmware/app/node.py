# app.node: the sensor node's main loop (layer: firmware). Brings the network up,
# connects with the Last Will "offline", announces "online", answers commands, publishes
# a reading every interval_s (kept in the offline ring while the link is down), feeds the
# watchdog and, in sleep mode "deep", runs one wake-read-publish-sleep cycle per boot.
#
# The run loop is the one place in the project where a broad `except Exception` logs,
# backs off and carries on: a node in a cupboard must survive anything it did not foresee.
# Everything it calls catches only what it can handle.
import json

from app import VERSION, ha, offline, telemetry
from app import commands as commands_mod
from app import config as config_mod
from app.log import log
from mote import MQTTException
from mote.compat import sleep_ms, ticks_add, ticks_diff, ticks_ms

_POLL_MS = 50  # how often the loop looks for commands between readings
_BACKOFF_FIRST_MS = 1000
_INBOX_MAX = 8  # commands waiting to run; more in one poll are dropped and counted
_DRAIN_PER_STEP = 8  # queued readings sent per loop pass, so commands are not starved
_RTC_MAGIC = b"MOTE1"
_RTC_MAX = 2048  # ESP32 RTC slow memory available to MicroPython
_DEEP_RING_BYTES = 768  # offline ring in deep-sleep mode: must fit RTC memory with the rest
_LINGER_MS = 300  # deep sleep: stay awake this long for commands the broker queued
_DEEP_OUTBOX = 1024  # deep sleep: client outbox bytes (its session goes to RTC memory)


def _make_client(cfg, client_id):
    """The real MQTT client for cfg["broker"] (not connected yet). In deep-sleep mode its
    outbox is small enough for the session to fit RTC memory with the node's state."""
    from mote import MQTTClient

    b = cfg["broker"]
    params = {}
    if b["tls"] and b["ca"]:
        params["cafile"] = b["ca"]
    deep = cfg["sleep"] == "deep"
    return MQTTClient(
        client_id,
        b["host"],
        b["port"],
        b["user"],
        b["password"],
        b["keepalive_s"],
        True if b["tls"] else None,
        params,
        reconnect=True,
        max_inflight=4 if deep else 8,
        outbox_size=_DEEP_OUTBOX if deep else 4096,
        timeout_ms=5000,
        backoff_max_ms=cfg["backoff_max_s"] * 1000,
    )


# The client's session save/restore (for deep sleep). Kept here, in two small functions,
# so a change in the client's API touches nothing else.
def _session_save(client, room):
    """The client's session as bytes of at most room, or b"" (logged) when it cannot."""
    buf = bytearray(room)
    try:
        n = client.save_session(buf)
    except ValueError as e:
        log("session state not kept:", _describe(e))
        return b""
    return bytes(buf[:n])


def _session_restore(client, blob):
    if not blob:
        return
    try:
        client.load_session(blob)
    except ValueError as e:  # corrupt or foreign: start without it
        log("session state not restored:", _describe(e))


def _connect_count(client):
    """How many times the client reconnected by itself (catches a reconnect that happened
    inside one check_msg call)."""
    return client.stats().get("reconnects", 0)


class Node:
    """One sensor node. hw: what hal.build() returned. make_client(cfg, client_id) builds
    the MQTT client. clock/sleep default to ticks_ms/sleep_ms; tests pass fakes."""

    def __init__(
        self,
        cfg,
        raw,
        problems,
        hw,
        make_client=_make_client,
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
        self.device_id = cfg["device_id"] or _hex(hw.system.unique_id())
        p = cfg["prefix"]
        base = p + "/" + self.device_id
        self.base = base
        self.t_status = (base + "/status").encode()
        self.t_telemetry = (base + "/telemetry").encode()
        self.t_error = (base + "/error").encode()
        self.cmd_filter = (base + "/cmd/+").encode()
        self._cmd_prefix = (base + "/cmd/").encode()
        self._reply_prefix = base + "/reply/"
        client_id = cfg["broker"]["client_id"] or p + "-" + self.device_id
        ring_bytes = cfg["offline_bytes"]
        if self.deep and ring_bytes > _DEEP_RING_BYTES:
            ring_bytes = _DEEP_RING_BYTES
        self.ring = offline.Ring(ring_bytes)
        self.commands = commands_mod.Commands(self)
        self.seq = 0
        self._secs = 0  # node time: whole seconds since boot (or since power-on, deep mode)
        self._ms = 0  # and the milliseconds below a second
        self._last_tick = clock()
        self._inbox = []
        self._reboot = False
        self._fields = None  # reading keys, for Home Assistant discovery
        self._net_ok = False
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
        self.client = make_client(cfg, client_id)
        self.client.set_callback(self._on_message)
        self.client.set_last_will(self.t_status, b"offline", True, 1)

    # --- time --------------------------------------------------------------------------

    def _tick(self):
        """Advance node time from the clock; returns the clock's now (ms ticks)."""
        now = self._clock()
        self._ms += ticks_diff(now, self._last_tick)
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

    # --- persistent state (RTC memory) -------------------------------------------------

    def _rtc_save(self, with_session=False):
        head = {"seq": self.seq, "ids": self.commands.recent_keys(), "deep": self.deep}
        if self.deep:
            head["up"] = self._secs
            head["iv"] = self.interval_s
        data = json.dumps(head).encode()
        ring = self.ring.to_bytes() if self.deep else b""
        out = _RTC_MAGIC + _u16(len(data)) + data + _u16(len(ring)) + ring
        if with_session:
            out += _session_save(self.client, _RTC_MAX - len(out))
        try:
            self.hw.system.rtc_write(out)
        except (OSError, ValueError) as e:
            log("could not save RTC state:", e)

    def _rtc_restore(self):
        try:
            data = self.hw.system.rtc_read()
        except OSError as e:
            log("could not read RTC state:", e)
            return
        n = len(_RTC_MAGIC)
        if len(data) < n + 4 or data[:n] != _RTC_MAGIC:
            return  # power-on: RTC memory holds nothing of ours
        try:
            hl = (data[n] << 8) | data[n + 1]
            head = json.loads(data[n + 2 : n + 2 + hl])
            off = n + 2 + hl
            rl = (data[off] << 8) | data[off + 1]
            ring = data[off + 2 : off + 2 + rl]
            blob = data[off + 2 + rl :]
            self.seq = int(head.get("seq", 0))
            self._fresh_boot = False
            self.commands.restore_keys(head.get("ids", []))
            if self.deep and head.get("deep"):
                self._secs = int(head.get("up", 0))
                self.interval_s = int(head.get("iv", self.interval_s))
                if ring:
                    self.ring.load(ring)
                self._session_blob = bytes(blob)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            log("RTC state unreadable, starting afresh:", e)

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
        self._inbox.append((t[n:].decode(), bytes(msg)))

    def _publish(self, topic, payload, retain=False, qos=0):
        """client.publish; returns False when the client dropped it (QoS 0 while
        disconnected) so the caller can keep it."""
        if self.client.publish(topic, payload, retain, qos) < 0:
            return False
        self.published += 1
        return True

    def _fail(self, what, e, now):
        log(what, "failed:", _describe(e), "- retry in", self._backoff_ms // 1000, "s")
        self._retry_at = ticks_add(now, self._backoff_ms)
        self._backoff_ms = min(self._backoff_ms * 2, self.cfg["backoff_max_s"] * 1000)

    def _connect(self):
        b = self.cfg["broker"]
        _session_restore(self.client, self._session_blob)
        self._session_blob = b""
        log("connecting to", b["host"], "port", b["port"] or "default", "as", self.device_id)
        self.client.connect(b["clean_session"])
        self.client.subscribe(self.cmd_filter, 1)
        self._connected_once = True

    def _on_up(self):
        """A (re)connection: announce, report problems, and Home Assistant discovery."""
        log("connected; status online on", self.t_status.decode())
        self._publish(self.t_status, b"online", True, 1)
        if self.problems:
            err = json.dumps({"error": "; ".join(self.problems)}).encode()
            self._publish(self.t_error, err, True, 1)
        elif not self._error_cleared:
            self._publish(self.t_error, b"", True, 1)  # clears a report from an earlier boot
        self._error_cleared = True
        if self.cfg["ha_discovery"]:
            self._ha_discovery()

    def _ha_discovery(self):
        if self._fields is None:
            r = telemetry.sample(self.hw.sensors, 0, 0, self._rssi(), self._sensor_error)
            self._fields = list(r)
        msgs = ha.messages(
            self.cfg["ha_prefix"],
            self.cfg["prefix"],
            self.device_id,
            self.hw.name,
            VERSION,
            self._fields,
        )
        for topic, payload in msgs:
            self._publish(topic, payload, True, 1)

    def _rssi(self):
        return self.hw.network.rssi() if self._net_ok else None

    def link(self, now):
        """Make progress on the network and broker connection. True when telemetry can be
        published now. Raises nothing it expects (network and MQTT failures back off)."""
        net = self.hw.network
        if not net.isconnected():
            if self._net_ok:
                log("wifi down")
                self._net_ok = False
                self._online = False
            if not self._due(self._retry_at, now):
                return False
            try:
                net.up(self.cfg["wifi"]["timeout_s"] * 1000)
            except OSError as e:  # hal.NetworkError is an OSError
                self._fail("wifi", e, self._clock())
                return False
        if not self._net_ok:
            log("wifi up, ip", net.ip())
            self._net_ok = True
        if not self._connected_once:
            if not self._due(self._retry_at, now):
                return False
            try:
                self._connect()
            except (OSError, MQTTException) as e:
                self._fail("mqtt connect", e, self._clock())
                return False
        else:
            try:
                self.client.check_msg()
            except (OSError, MQTTException) as e:
                self._fail("mqtt", e, self._clock())
        up = self.client.is_connected()
        count = _connect_count(self.client)
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
            log(
                "offline queue full:",
                lost,
                "oldest reading(s) dropped,",
                self.ring.dropped,
                "in all",
            )

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
        """Answer every queued command on <p>/<id>/reply/<name>."""
        while self._inbox:
            name, payload = self._inbox.pop(0)
            reply = self.commands.handle(name, payload)
            log("command", name, "->", reply.decode())
            if self._online:
                try:
                    self._publish((self._reply_prefix + name).encode(), reply, False, 1)
                except OSError as e:
                    log("reply failed:", _describe(e))

    def set_interval(self, s):
        self.interval_s = s
        self._next_read = ticks_add(self._tick(), s * 1000)

    def request_reboot(self):
        self._reboot = True

    def config_view(self):
        return config_mod.redacted(self.cfg)

    def change_config(self, changes):
        names = config_mod.change(self.cfg, self.raw, changes)
        try:
            config_mod.save(self.raw, self.config_path)
        except OSError as e:
            raise commands_mod.CommandError("changed but not saved: " + _describe(e))
        reboot = False
        for name in names:
            if name == "interval_s":
                self.set_interval(self.cfg["interval_s"])
            elif name == "ha_discovery" and self.cfg["ha_discovery"] and self._online:
                self._ha_discovery()
            elif name not in config_mod.LIVE:
                reboot = True
        log("config changed:", ", ".join(names), "(saved)")
        return {"changed": names, "reboot_required": reboot}

    def info(self):
        net = self.hw.network
        out = {
            "version": VERSION,
            "board": self.hw.name,
            "device_id": self.device_id,
            "mem_free": self.hw.system.mem_free(),
            "uptime_s": self.uptime_s(),
            "interval_s": self.interval_s,
            "sleep": self.cfg["sleep"],
            "ip": net.ip(),
            "rssi": net.rssi(),
            "reset_cause": self.hw.system.reset_cause(),
            "seq": self.seq,
            "queued": len(self.ring),
            "dropped": self.ring.dropped,
            "loop_errors": self.loop_errors,
            "commands_dropped": self.cmds_dropped,
            "mqtt": self.client.stats(),
        }
        if self.problems:
            out["error"] = "; ".join(self.problems)
        return out

    # --- the loop ----------------------------------------------------------------------

    def start(self):
        """Once per boot: restore RTC state, start the watchdog, bring the network up."""
        self._rtc_restore()
        wdt_s = self.cfg["watchdog_s"]
        if wdt_s:
            self.hw.system.wdt_start(wdt_s * 1000)
        for p in self.problems:
            log("problem:", p)
        log(
            "mote",
            VERSION,
            "board",
            self.hw.name,
            "id",
            self.device_id,
            "interval",
            self.interval_s,
            "s",
            "deep sleep" if self.deep else "",
        )

    def step(self):
        """One pass of the loop: feed the watchdog, keep the link, run commands, drain the
        offline ring, take a reading when due. Returns ms until the next pass."""
        self.hw.system.wdt_feed()
        now = self._tick()
        self.link(now)
        self.run_commands()
        if self._online and len(self.ring):
            n = self.drain()
            if n:
                log("sent", n, "queued reading(s);", len(self.ring), "left")
        now = self._tick()
        if self._due(self._next_read, now):
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
        """Clean stop: status offline (retained), wait briefly for acks, disconnect."""
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
            return self.cycle()
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

    def cycle(self):
        """Deep-sleep mode: one wake. Read, publish at QoS 1 with what was queued, answer
        commands the broker kept, wait for the acks (client flush) within awake_s, save
        state to RTC memory and sleep interval_s. Anything that fails is logged and the
        node sleeps anyway: the next wake tries again."""
        awake_ms = self.cfg["awake_s"] * 1000
        t0 = self._tick()
        reading = None
        try:
            self.hw.system.wdt_feed()
            try:
                self.hw.network.up(self.cfg["wifi"]["timeout_s"] * 1000)
                self._net_ok = True
            except OSError as e:  # hal.NetworkError: the reading waits in RTC memory
                log("wifi failed:", _describe(e))
            reading = self.take_reading()
            if self._net_ok:
                self._connect()
                self._online = self.client.is_connected()
                self._connects = _connect_count(self.client)
                if self._fresh_boot:
                    self._on_up()
                else:
                    self._publish(self.t_status, b"online", True, 1)
                self.drain(1, 1000)
                self.deliver(reading, 1)
                reading = None
                while ticks_diff(self._tick(), t0) < awake_ms:
                    self.hw.system.wdt_feed()
                    self.client.check_msg()
                    self.run_commands()
                    if self._reboot:
                        break
                    if ticks_diff(self._tick(), t0) >= _LINGER_MS and not self.client.pending():
                        break
                    self._sleep(20)
                left = awake_ms - ticks_diff(self._tick(), t0)
                pending = self.client.flush(left if left > 0 else 0)
                if pending:
                    log(pending, "message(s) unacknowledged; kept for the next wake")
        except Exception as e:  # the deep-sleep cycle's broad catch: log, sleep, retry
            self.loop_errors += 1
            log("wake cycle error:", _describe(e))
        if reading is not None:
            self.ring.push(reading["uptime_s"], telemetry.encode(reading))
        sleep_ms = self.interval_s * 1000
        # Node time continues across sleep: stored time is the wake-up time.
        self._tick()
        self._secs += self.interval_s
        self._rtc_save(with_session=True)
        self._secs -= self.interval_s
        if self._online:
            try:
                self.client.disconnect()
            except (OSError, MQTTException) as e:
                log("disconnect failed:", _describe(e))
        self.hw.network.down()
        if self._reboot:
            self.hw.system.reset()
        log("deep sleep", sleep_ms, "ms")
        self.hw.system.deep_sleep(sleep_ms)


def _u16(n):
    return bytes((n >> 8, n & 0xFF))


def _hex(b):
    return "".join("%02x" % x for x in b)


def _describe(e):
    return type(e).__name__ + (": " + " ".join(str(a) for a in e.args) if e.args else "")


def main(config_path="config.json"):
    """Boot the node: config, board, hardware, then the loop. A config that cannot work
    is reported and main returns (to the REPL on a device) instead of crash-looping; on
    the host a Reboot or DeepSleep starts the node afresh in the same process."""
    import board as board_mod

    import hal

    while True:
        try:
            cfg, raw, problems = config_mod.load(config_path)
        except config_mod.ConfigError as e:
            log("config error:", e.args[0])
            log("fix", config_path, "and reset the board (nothing else runs until then)")
            return
        board = board_mod.BOARD
        config_mod.board_defaults(cfg, raw, board.get("defaults"), problems)
        hw = hal.build(board, cfg)
        node = Node(cfg, raw, problems, hw, config_path=config_path, sensor_error=hal.SensorError)
        try:
            node.run()
        except hal.Reboot:
            log("host: reboot, starting afresh")
        except hal.DeepSleep as e:
            log("host: sleeping", e.ms, "ms as a device would")
            sleep_ms(e.ms)
        except KeyboardInterrupt:
            log("stopped")
            node.shutdown()
            return
