# app.deep: the deep-sleep mode's one wake (layer: firmware), and the MQTT client's session
# kept in RTC memory across sleeps. Imported only when "sleep" is "deep".
from app import telemetry
from app.log import log
from mote.compat import const, ticks_diff

_LINGER_MS = const(300)  # stay awake at least this long for commands the broker queued
_FLUSH_STEP_MS = const(1000)  # wait for acks in steps this long, feeding the watchdog
_DAY_S = const(86400)
_RING_HDR = const(6)  # app.offline's record header: u16 payload length, u32 sample time


def _describe(e):
    return type(e).__name__ + (": " + " ".join(str(a) for a in e.args) if e.args else "")


# The client's session save/restore. Kept here, in two small functions, so a change in
# the client's API touches nothing else.
def session_save(client, room):
    """The client's session as bytes of at most room, or b"" (logged) when it cannot."""
    buf = bytearray(room)
    try:
        n = client.save_session(buf)
    except ValueError as e:
        log("session state not kept:", _describe(e))
        return b""
    return bytes(buf[:n])


def session_restore(client, blob):
    if not blob:
        return
    try:
        client.load_session(blob)
    except ValueError as e:  # corrupt or foreign: start without it
        log("session state not restored:", _describe(e))


# The offline ring in RTC memory: its records (app.offline's layout), oldest first, after
# the dropped count (u32, below 2**30). Here, not in app.offline, because only deep sleep
# keeps the ring across a reset: a node that never sleeps does not load this code.
def ring_bytes(ring):
    """ring's records and dropped count as one bytes object (for RTC memory)."""
    d = ring.dropped
    out = bytearray((d >> 24, (d >> 16) & 0xFF, (d >> 8) & 0xFF, d & 0xFF))
    if ring.used:
        out += ring._get(ring._head, ring.used)
    return bytes(out)


def ring_load(ring, data):
    """Refill ring from ring_bytes() output (possibly from a larger ring: the newest
    records that fit are kept, the rest counted as dropped). Raises ValueError on bad
    data."""
    if len(data) < 4:
        raise ValueError("ring data too short", len(data))
    ring._head = ring.used = ring.count = 0
    ring.dropped = ((data[0] & 0x3F) << 24) | (data[1] << 16) | (data[2] << 8) | data[3]
    off = 4
    while off < len(data):
        if off + _RING_HDR > len(data):
            raise ValueError("ring data truncated", off)
        n = (data[off] << 8) | data[off + 1]
        t_s = (
            ((data[off + 2] & 0x3F) << 24)
            | (data[off + 3] << 16)
            | (data[off + 4] << 8)
            | data[off + 5]
        )
        end = off + _RING_HDR + n
        if end > len(data):
            raise ValueError("ring data truncated", off)
        ring.push(t_s, data[off + _RING_HDR : end])
        off = end


def cycle(node):
    """One wake. Read, publish at QoS 1 with what was queued, answer commands the broker
    kept, wait for the acks (client flush) within awake_s, save state to RTC memory and
    sleep interval_s. Anything that fails is logged and the node sleeps anyway: the next
    wake tries again. Every wait feeds the watchdog at least once a second."""
    from mote import MQTTException

    awake_ms = node.cfg["awake_s"] * 1000
    t0 = node._tick()
    reading = None
    feed = node.hw.system.wdt_feed
    try:
        feed()
        try:
            node.hw.network.up(node.cfg["wifi"]["timeout_s"] * 1000, feed)
            node._net_ok = True
        except OSError as e:  # hal.NetworkError: the reading waits in RTC memory
            log("wifi failed:", _describe(e))
        # The RTC runs on through deep sleep: sync at power-on, then once a day.
        stale = node._ntp_secs < 0 or node._secs - node._ntp_secs >= _DAY_S
        if stale or telemetry.wall_time_s() is None:
            node.sync_clock(t0, False)
        reading = node.take_reading()
        if node._net_ok:
            node._connect()
            node._online = node.client.is_connected()
            node._connects = node.client.reconnects
            if node._fresh_boot:
                node._on_up()
            else:
                node._publish(node.t_status, b"online", True, 1)
            node.drain(1, 1000)
            node.deliver(reading, 1)
            reading = None
            while ticks_diff(node._tick(), t0) < awake_ms:
                feed()
                node.client.check_msg()
                node.run_commands()
                if node._reboot:
                    break
                if ticks_diff(node._tick(), t0) >= _LINGER_MS and not node.client.pending():
                    break
                node._sleep(20)
            pending = node.client.pending()
            left = awake_ms - ticks_diff(node._tick(), t0)
            while pending and left > 0:
                feed()
                pending = node.client.flush(_FLUSH_STEP_MS if left > _FLUSH_STEP_MS else left)
                left = awake_ms - ticks_diff(node._tick(), t0)
            if pending:
                log(pending, "message(s) unacknowledged; kept for the next wake")
    except Exception as e:  # the deep-sleep cycle's broad catch: log, sleep, retry
        node.loop_errors += 1
        log("wake cycle error:", _describe(e))
    if reading is not None:
        node.ring.push(reading["uptime_s"], telemetry.encode(reading))
    sleep_ms = node.interval_s * 1000
    # Node time continues across sleep: stored time is the wake-up time.
    node._tick()
    node._secs += node.interval_s
    node._rtc_save(with_session=True)
    node._secs -= node.interval_s
    if node._online:
        try:
            node.client.disconnect()
        except (OSError, MQTTException) as e:
            log("disconnect failed:", _describe(e))
    node.hw.network.down()
    if node._reboot:
        node.hw.system.reset()
    log("deep sleep", sleep_ms, "ms")
    node.hw.system.deep_sleep(sleep_ms)
