# app.clock: setting the real-time clock by NTP (layer: firmware), so readings carry "ts".
# One bounded attempt per call (hal.ntp: a DNS lookup and one query of ntp.timeout_s),
# with the watchdog fed first. Imported by Node.sync_clock when an attempt is due and
# forgotten again after it: it runs a few times a day at most.
from app.log import log
from mote.compat import const, ticks_add

# All below 2**29 ms, the longest span ticks_diff can compare.
_RETRY_MS = const(30_000)  # between the attempts of one round
_TRIES = const(3)  # attempts per round
_ROUND_MS = const(3_600_000)  # after a round that failed
_RESYNC_MS = const(86_400_000)  # after a success: an ESP32's RTC drifts seconds a day


def sync(node, retry=True):
    """One attempt to set the clock from node's ntp.host. A failed attempt is retried
    after 30 s, three times a round, then after an hour; a success holds for a day (the
    schedule is node._ntp_at). retry False (deep sleep): just this attempt. A port without
    ntptime is reported once and NTP is switched off. Returns True when the clock was set."""
    from hal import ntp, unload

    host = node._ntp_host
    node.hw.system.wdt_feed()
    try:
        ok = ntp.sync(host, node.cfg["ntp"]["timeout_s"])
    except OSError as e:  # DNS, timeout, a bad answer (hal.NetworkError)
        node._ntp_tries += 1
        wait = _RETRY_MS
        if node._ntp_tries >= _TRIES:
            node._ntp_tries = 0
            wait = _ROUND_MS
        why = type(e).__name__ + ": " + " ".join(str(a) for a in e.args)
        if retry:
            log("ntp failed:", why, "- retry in", wait // 1000, "s")
        else:
            log("ntp failed:", why)
        node._ntp_at = ticks_add(node._clock(), wait)
        return False
    finally:
        unload("hal.ntp")
    if not ok:
        log("ntp: no ntptime module on this port; the clock is left as it is")
        node._ntp_host = None
        return False
    node._ntp_tries = 0
    node.ntp_syncs += 1
    node._ntp_secs = node._secs
    node._ntp_at = ticks_add(node._clock(), _RESYNC_MS)
    log("clock set from", host)
    return True
