# app.log: console logging for the firmware (layer: firmware). One line per event,
# prefixed with the node's uptime; callers never pass secrets (config.redacted exists).
from mote.compat import ticks_diff, ticks_ms

_T0 = ticks_ms()


def log(*args):
    """Print one line, prefixed with seconds since boot. Allocates (console path only)."""
    ms = ticks_diff(ticks_ms(), _T0)
    print("[%d.%03d]" % (ms // 1000, ms % 1000), "mote:", *args)
