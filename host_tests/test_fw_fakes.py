# Fakes for the firmware tests (both interpreters): an MQTT client with the real one's
# methods that records what the node does, and hardware twins with the HAL's names.
# The file holds no tests of its own except one check of the fakes; it also puts
# firmware/ on sys.path, which conftest.py and mprun.py do not.
import sys

_HERE = __file__.rpartition("/")[0] or "."
if _HERE == ".":
    ROOT = ".."
elif "/" in _HERE:
    ROOT = _HERE.rpartition("/")[0] or "/"
else:
    ROOT = "."
FIRMWARE = ROOT + "/firmware"
if FIRMWARE not in sys.path:
    sys.path.append(FIRMWARE)

TMP = "/tmp"

# Modules the node imports on demand and forgets after use (hal.unload): none may stay
# imported once boot, a connection and the rare commands are over.
ON_DEMAND = (
    "app.config",
    "app.setup",
    "app.commands",
    "app.admin",
    "app.info",
    "app.ha",
    "app.online",
    "app.clock",
    "app.sign",
    "hal.builder",
    "hal.ntp",
    "hal.standin",
)


class FakeReboot(Exception):
    pass


class FakeDeepSleep(Exception):
    def __init__(self, ms):
        super().__init__(ms)
        self.ms = ms


class FakeSensorError(Exception):
    pass


class StopLoop(BaseException):
    """Raised by a fake sleep to leave Node.run(), which catches every Exception."""


class FakeSession:
    """The real client's session counters the node reads: oversize messages dropped."""

    def __init__(self):
        self.dropped = 0
        self.drop_len = 0


class FakeClient:
    """Records publishes as (topic str, payload bytes, retain, qos). `broker_up` False
    makes connect() raise and drops the connection on the next check_msg(). inject()
    queues a message for the callback (msg_retain set as the real client does)."""

    def __init__(self, cfg=None, client_id="fake"):
        self.client_id = client_id
        self.cfg = cfg
        self.cb = None
        self.will = None
        self.connected = False
        self.connects = 0
        self.broker_up = True
        self.published = []
        self.queued = []  # QoS 1/2 published while disconnected: sent on reconnecting
        self.subs = []
        self.incoming = []
        self.unacked = 0  # QoS 1 publishes that flush() will not complete
        self.ack = True
        self.session = b""
        self.restored = None
        self.clean = None
        self.disconnects = 0
        self.check_error = None
        self.msg_retain = False
        self._s = FakeSession()
        self._pid = 0

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.will = (bytes(topic).decode(), bytes(msg), retain, qos)

    def connect(self, clean_session=True, timeout=None):
        if not self.broker_up:
            raise OSError(111, "connection refused")
        self.clean = clean_session
        self.connected = True
        self.connects += 1
        self._send_queued()
        return False

    def _send_queued(self):
        self.published += self.queued
        self.queued = []

    def subscribe(self, topic, qos=0):
        self.subs.append((bytes(topic).decode(), qos))
        return qos

    def publish(self, topic, msg, retain=False, qos=0):
        if not self.connected:
            if not qos:
                return -1  # as the real client: QoS 0 while disconnected is dropped
            self.queued.append((bytes(topic).decode(), bytes(msg), retain, qos))
            self._pid += 1  # as the real client: QoS 1/2 wait in the outbox
            return self._pid
        if qos and not self.ack:
            self.unacked += 1
        self.published.append((bytes(topic).decode(), bytes(msg), retain, qos))
        if qos:
            self._pid += 1
            return self._pid
        return 0

    def check_msg(self):
        if self.check_error is not None:
            e = self.check_error
            self.check_error = None
            raise e
        if not self.broker_up:
            self.connected = False
            return
        if not self.connected and self.connects:
            self.connected = True
            self.connects += 1
            self._send_queued()
        while self.incoming and self.connected:
            t, m, retain = self.incoming.pop(0)
            if m is None:  # oversize: the real client drops it and counts
                self._s.dropped += 1
                self._s.drop_len = retain
                continue
            self.msg_retain = retain
            self.cb(t, m)
            self.msg_retain = False

    def inject(self, topic, payload, retain=False):
        self.incoming.append((topic.encode(), payload, retain))

    def inject_oversize(self, topic, size):
        """A message of size bytes that the real client would drop (rx_size)."""
        self.incoming.append((topic.encode(), None, size))

    def is_connected(self):
        return self.connected

    def pending(self):
        return self.unacked

    def flush(self, timeout_ms):
        return self.unacked

    @property
    def reconnects(self):
        return max(self.connects - 1, 0)

    def stats(self):
        return {"reconnects": self.reconnects}

    def disconnect(self):
        self.connected = False
        self.disconnects += 1

    def save_session(self, buf):
        if len(self.session) > len(buf):
            raise ValueError("snapshot buffer too small", len(self.session))
        buf[0 : len(self.session)] = self.session
        return len(self.session)

    def load_session(self, buf, n=None):
        self.restored = bytes(buf)

    # --- helpers for tests
    def on(self, suffix):
        """Publishes whose topic ends with suffix."""
        return [p for p in self.published if p[0].endswith(suffix)]


class FakeNetwork:
    """up() blocks (the deep-sleep cycle uses it), check() never does (the main loop)."""

    def __init__(self):
        self.connected = True
        self.ups = 0
        self.checks = 0
        self.downs = 0
        self.up_feed = None

    def up(self, timeout_ms=15000, feed=None):
        self.ups += 1
        self.up_feed = feed
        if not self.connected:
            raise OSError(110, "wifi: not connected")

    def check(self):
        self.checks += 1
        return self.connected

    def status_name(self):
        return None if self.connected else "no AP found"

    def isconnected(self):
        return self.connected

    def rssi(self):
        return -61 if self.connected else None

    def ip(self):
        return "10.0.0.7" if self.connected else None

    def down(self):
        self.downs += 1


class FakeSensor:
    def __init__(self, name="sim", fields=None):
        self.name = name
        self.fields = fields or {"temperature_c": 21.5, "humidity_pct": 40.0}
        self.fail = None

    def read(self):
        if self.fail is not None:
            raise self.fail
        return dict(self.fields)


class FakeLED:
    def __init__(self):
        self.lit = False

    def on(self):
        self.lit = True

    def off(self):
        self.lit = False

    def toggle(self):
        self.lit = not self.lit

    def value(self):
        return self.lit


class FakeSystem:
    """feed_times: the clock at each watchdog feed, once make_node() set clock."""

    def __init__(self):
        self.rtc = b""
        self.feeds = 0
        self.wdt = None
        self.clock = None
        self.feed_times = []

    def unique_id(self):
        return b"\xde\xad\xbe\xef"

    def mem_free(self):
        return 100000

    def reset(self):
        raise FakeReboot()

    def deep_sleep(self, ms):
        raise FakeDeepSleep(ms)

    def wdt_start(self, timeout_ms):
        self.wdt = timeout_ms

    def wdt_feed(self):
        self.feeds += 1
        if self.clock is not None:
            self.feed_times.append(self.clock())

    def rtc_read(self):
        return self.rtc

    def rtc_write(self, data):
        if len(data) > 2048:
            raise ValueError("too big", len(data))
        self.rtc = bytes(data)

    def reset_cause(self):
        return "power_on"


class FakeHW:
    def __init__(self, sensors=None):
        self.name = "fake"
        self.network = FakeNetwork()
        self.sensors = sensors if sensors is not None else [FakeSensor()]
        self.led = FakeLED()
        self.system = FakeSystem()
        self.errors = []


def make_config(**over):
    """A validated config for tests, with overrides (section dicts are merged)."""
    from app import config

    raw = {"broker": {"host": "127.0.0.1"}, "watchdog_s": 30}
    for k in over:
        if type(over[k]) is dict and type(raw.get(k)) is dict:
            raw[k].update(over[k])
        else:
            raw[k] = over[k]
    cfg, problems = config.validate(raw)
    return cfg, raw, problems


def make_node(hw=None, client=None, config_path=None, **over):
    """A Node on fakes and a fake clock. Returns (node, client, hw, clock)."""
    from app import node as node_mod

    from support import FakeClock

    cfg, raw, problems = make_config(**over)
    hw = hw or FakeHW()
    client = client or FakeClient()
    clock = FakeClock()

    def now():
        return clock.now

    def sleep(ms):
        clock.advance(ms)

    hw.system.clock = now
    n = node_mod.Node(
        cfg,
        raw,
        problems,
        hw,
        make_client=lambda c, cid: client,
        config_path=config_path or TMP + "/mote_fw_test_config.json",
        clock=now,
        sleep=sleep,
        sensor_error=FakeSensorError,
    )
    return n, client, hw, clock


def run_for(node, clock, ms):
    """Drive node.step() for ms of fake time, sleeping as the loop would."""
    from mote.compat import ticks_add, ticks_diff

    end = ticks_add(clock.now, ms)
    while ticks_diff(end, clock.now) > 0:
        wait = node.step()
        clock.advance(wait or 1)


def test_fakes_make_a_node():
    node, client, hw, clock = make_node()
    assert node.device_id == "deadbeef"
    assert client.will == ("mote/deadbeef/status", b"offline", True, 1)
