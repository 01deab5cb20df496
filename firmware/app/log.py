# app.log: console logging for the firmware (layer: firmware). One line per event,
# prefixed with the node's uptime; callers never pass secrets (config.redacted exists).
#
# The uptime is a running count that advances by ticks_diff of successive readings of
# the clock, so it keeps going across the ticks wrap (2**30 ms, 12.4 days on an ESP32):
# a difference from one start tick would turn negative after half of that. tick() must
# run at least every 6.2 days; the main loop calls it on every pass.
from mote.compat import ticks_diff, ticks_ms

_clock = ticks_ms
_last = ticks_ms()
_secs = 0  # whole seconds of uptime (below 2**30 for 34 years)
_ms = 0  # and the milliseconds below a second


def set_clock(fn):
    """Take uptime from fn() (ms on the ticks_ms scale) from now on (tests)."""
    global _clock, _last
    _clock = fn
    _last = fn()


def tick():
    """Advance the uptime to now. Allocates nothing."""
    global _last, _secs, _ms
    now = _clock()
    d = ticks_diff(now, _last)
    _last = now
    if d > 0:
        _ms += d
        if _ms >= 1000:
            _secs += _ms // 1000
            _ms %= 1000


def uptime():
    """(seconds, milliseconds) since boot, after tick()."""
    tick()
    return _secs, _ms


def log(*args):
    """Print one line, prefixed with seconds since boot. Allocates (console path only)."""
    tick()
    print("[%d.%03d]" % (_secs, _ms), "mote:", *args)
