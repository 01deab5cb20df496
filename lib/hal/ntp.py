# hal.ntp: set the real-time clock from an NTP server with the port's `ntptime` module
# (ESP32 ports have it; the unix port has not). Layer: lib/hal. One call is one bounded
# attempt: a DNS lookup, then one UDP query waiting at most timeout_s.
from hal.errors import NetworkError
from mote.compat import const

_EIO = const(5)

# What a bad or missing answer raises inside ntptime besides OSError: an empty address
# list (IndexError), a short packet (ValueError), a time the RTC cannot hold
# (OverflowError). Each becomes a NetworkError so callers catch one class.
_BAD_ANSWER = (IndexError, ValueError, OverflowError)


def sync(host, timeout_s):
    """Ask host (name or address) once for the time and set the RTC from it. Returns
    True when the clock was set, False when this port has no ntptime module (nothing to
    retry). Raises OSError (NetworkError for a bad answer) when the server cannot be
    reached or does not answer within timeout_s; the DNS lookup before that is bounded
    by the network stack, not by timeout_s. Allocates."""
    try:
        import ntptime
    except ImportError:
        return False
    ntptime.host = host
    ntptime.timeout = timeout_s
    try:
        ntptime.settime()
    except _BAD_ANSWER as e:
        raise NetworkError(_EIO, "ntp: bad answer: " + type(e).__name__)
    return True
