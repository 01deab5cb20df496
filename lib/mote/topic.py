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


def name_error(b, off, n, is_filter=False):
    """Check the topic name in b[off:off+n] (bytes-like) without slicing it; with
    is_filter=True, check it as a topic filter.

    Returns None if it is valid, else a short constant string naming the rule it breaks
    ("empty topic", "too long", "NUL byte", "bad UTF-8", "wildcard" in a name, "bad '+'"
    or "bad '#'" not a whole level, "'#' not last"). Allocates nothing. (Short messages
    and no helper functions: each costs RAM on a board.)"""
    if n == 0:
        return "empty topic"  # MQTT-4.7.3-1
    if n > _MAX_LEN:
        return "too long"  # MQTT-4.7.3-3: at most 65535 bytes
    end = off + n
    i = off
    while i < end:
        c = b[i]
        i += 1
        if c >= 0x80:
            # MQTT-1.5.3-1: well-formed UTF-8 (RFC 3629), no surrogates. A lead byte C2..F4,
            # then 1..3 bytes 80..BF; the first of them is narrower after E0 and F0 (no
            # overlong forms), ED (no U+D800..U+DFFF) and F4 (nothing above U+10FFFF).
            if c < 0xC2 or c > 0xF4:
                return "bad UTF-8"
            last = i + (1 if c < 0xE0 else 2 if c < 0xF0 else 3)
            if last > end:
                return "bad UTF-8"
            lo = 0xA0 if c == 0xE0 else 0x90 if c == 0xF0 else 0x80
            hi = 0x9F if c == 0xED else 0x8F if c == 0xF4 else 0xBF
            while i < last:
                c = b[i]
                if c < lo or c > hi:
                    return "bad UTF-8"
                lo = 0x80
                hi = 0xBF
                i += 1
        elif c == _NUL:
            return "NUL byte"  # MQTT-4.7.3-2, MQTT-1.5.3-2
        elif c == _PLUS or c == _HASH:
            if not is_filter:
                return "wildcard"  # MQTT-4.7.1-1: wildcards only in filters
            # MQTT-4.7.1-2, MQTT-4.7.1-3: a wildcard is a whole level (i is past it now)
            if i - 1 > off and b[i - 2] != _SLASH or i < end and b[i] != _SLASH:
                return "bad '+'" if c == _PLUS else "bad '#'"
            if c == _HASH and i != end:
                return "'#' not last"  # MQTT-4.7.1-2: '#' is the last character
    return None


def validate_name(topic, is_filter=False):
    """Check a topic name (bytes, bytearray, memoryview or str) for PUBLISH; with
    is_filter=True, check it as a filter (see validate_filter).

    Returns the topic as a bytes-like object (a str is encoded; others are returned
    as they are). Raises ValueError(rule, topic) naming the broken rule (see name_error),
    TypeError for other types. Allocates nothing for a valid bytes-like topic."""
    b = topic.encode() if isinstance(topic, str) else topic
    if not isinstance(b, _BYTES_LIKE):
        raise TypeError("bad type", topic)  # not bytes-like or str
    err = name_error(b, 0, len(b), is_filter)
    if err is not None:
        raise ValueError(err, topic)
    return b


def validate_filter(f):
    """Check a topic filter (bytes, bytearray, memoryview or str) for SUBSCRIBE or
    UNSUBSCRIBE: '#' alone and last, '+' a whole level.

    Returns the filter as a bytes-like object (a str is encoded). Raises
    ValueError(rule, f) naming the broken rule, TypeError for other types. Allocates
    nothing for a valid bytes-like filter."""
    return validate_name(f, True)


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
