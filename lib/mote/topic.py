# mote.topic: MQTT 3.1.1 topic name / filter validation and wildcard matching (section 4.7).
# Pure functions over bytes-like objects, indexed by position so matching allocates nothing.
from mote.compat import const

_NUL = const(0x00)
_DOLLAR = const(0x24)  # "$"
_PLUS = const(0x2B)  # "+": single-level wildcard
_SLASH = const(0x2F)  # "/": topic level separator
_HASH = const(0x23)  # "#": multi-level wildcard
_MAX_LEN = const(65535)  # MQTT-4.7.3-3: at most 65535 bytes of UTF-8

# Built once: a tuple written inside isinstance() would be allocated on every call.
_BYTES_LIKE = (bytes, bytearray, memoryview)


def _as_bytes(topic):
    # A str is encoded once, here; bytes-like objects pass through uncopied.
    if isinstance(topic, str):
        return topic.encode()
    if isinstance(topic, _BYTES_LIKE):
        return topic
    raise TypeError("topic must be bytes-like or str", topic)


def _utf8_end(b, i, end):
    """Index just past the well-formed UTF-8 sequence starting at b[i] (a byte >= 0x80),
    or -1 if it is ill-formed (RFC 3629 table; MQTT-1.5.3-1 forbids surrogates too)."""
    c = b[i]
    if 0xC2 <= c <= 0xDF:
        n = 1
        lo = 0x80
        hi = 0xBF
    elif c == 0xE0:
        n = 2
        lo = 0xA0  # no overlong 3-byte forms
        hi = 0xBF
    elif c == 0xED:
        n = 2
        lo = 0x80
        hi = 0x9F  # no U+D800..U+DFFF
    elif 0xE1 <= c <= 0xEF:
        n = 2
        lo = 0x80
        hi = 0xBF
    elif c == 0xF0:
        n = 3
        lo = 0x90  # no overlong 4-byte forms
        hi = 0xBF
    elif 0xF1 <= c <= 0xF3:
        n = 3
        lo = 0x80
        hi = 0xBF
    elif c == 0xF4:
        n = 3
        lo = 0x80
        hi = 0x8F  # nothing above U+10FFFF
    else:
        return -1
    i += 1
    if i + n > end:
        return -1
    c = b[i]
    if c < lo or c > hi:
        return -1
    last = i + n
    i += 1
    while i < last:
        c = b[i]
        if c < 0x80 or c > 0xBF:
            return -1
        i += 1
    return last


def _check(b, off, n, is_filter):
    """The message of the first rule b[off:off+n] breaks, or None. Allocates nothing."""
    if n == 0:
        return "topic is empty"  # MQTT-4.7.3-1
    if n > _MAX_LEN:
        return "topic longer than 65535 bytes"  # MQTT-4.7.3-3
    end = off + n
    i = off
    while i < end:
        c = b[i]
        if c >= 0x80:
            i = _utf8_end(b, i, end)
            if i < 0:
                return "topic is not well-formed UTF-8"  # MQTT-1.5.3-1
            continue
        if c == _NUL:
            return "topic contains NUL"  # MQTT-4.7.3-2, MQTT-1.5.3-2
        if c == _PLUS or c == _HASH:
            if not is_filter:
                return "wildcard in topic name"  # MQTT-4.7.1-1: wildcards only in filters
            if i > off and b[i - 1] != _SLASH:
                # MQTT-4.7.1-2, MQTT-4.7.1-3: a wildcard follows a separator or opens the filter
                return "'+' not a whole level" if c == _PLUS else "'#' not a whole level"
            if i + 1 < end and b[i + 1] != _SLASH:
                return "'+' not a whole level" if c == _PLUS else "'#' not a whole level"
            if c == _HASH and i + 1 != end:
                return "'#' not the last level"  # MQTT-4.7.1-2: '#' is the last character
        i += 1
    return None


def name_error(buf, off, n):
    """Check the topic name in buf[off:off+n] (bytes-like) without slicing it.

    Returns None if it is a valid topic name, else a constant string naming the rule it
    breaks (empty, too long, NUL, ill-formed UTF-8, wildcard). Allocates nothing."""
    return _check(buf, off, n, False)


def validate_name(topic):
    """Check a topic name (bytes, bytearray, memoryview or str) for PUBLISH.

    Returns the topic as a bytes-like object (a str is encoded; others are returned
    as they are). Raises ValueError(rule, topic) naming the broken rule, TypeError for
    other types. Allocates nothing for a valid bytes-like topic."""
    b = _as_bytes(topic)
    err = _check(b, 0, len(b), False)
    if err is not None:
        raise ValueError(err, topic)
    return b


def validate_filter(f):
    """Check a topic filter (bytes, bytearray, memoryview or str) for SUBSCRIBE or
    UNSUBSCRIBE: '#' alone and last, '+' a whole level.

    Returns the filter as a bytes-like object (a str is encoded). Raises
    ValueError(rule, f) naming the broken rule, TypeError for other types. Allocates
    nothing for a valid bytes-like filter."""
    b = _as_bytes(f)
    err = _check(b, 0, len(b), True)
    if err is not None:
        raise ValueError(err, f)
    return b


def matches(filter, topic):
    """True if topic name `topic` matches topic filter `filter` (MQTT 3.1.1 section 4.7).

    Both are bytes-like or str; `filter` must already be valid (see validate_filter), as
    it is not re-checked here. '#' also matches the parent level ('sport/#' matches
    'sport'); a filter opening with a wildcard does not match a topic opening with '$'.
    Allocates nothing for bytes-like arguments: it runs once per received message."""
    if isinstance(filter, str):
        filter = filter.encode()
    if isinstance(topic, str):
        topic = topic.encode()
    fn = len(filter)
    tn = len(topic)
    if tn and fn and topic[0] == _DOLLAR and (filter[0] == _PLUS or filter[0] == _HASH):
        return False  # MQTT-4.7.2-1
    fi = 0
    ti = 0
    # Each round starts a level in both; ti == tn + 1 means the topic has no levels left
    # (ti == tn is a real, empty last level, as in "a/").
    while True:
        if fi < fn and filter[fi] == _HASH:
            return True  # MQTT-4.7.1-2: this level, its children, and the parent
        if ti > tn:
            return False
        if fi < fn and filter[fi] == _PLUS:
            fi += 1  # MQTT-4.7.1-3: exactly one level, possibly empty
            while ti < tn and topic[ti] != _SLASH:
                ti += 1
        else:
            while fi < fn and filter[fi] != _SLASH:
                if ti >= tn or topic[ti] != filter[fi]:
                    return False
                fi += 1
                ti += 1
            if ti < tn and topic[ti] != _SLASH:
                return False
        # fi and ti are each at a separator or at the end.
        if fi >= fn:
            return ti >= tn
        fi += 1
        if ti >= tn:
            ti = tn + 1
        else:
            ti += 1
