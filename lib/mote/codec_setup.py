# mote.codec_setup: the packets of connection set-up, CONNECT, SUBSCRIBE and UNSUBSCRIBE.
# Layer 1, a part of mote.codec (whose rules apply: see the top of codec.py) kept apart
# because a connected client needs it only while it connects or subscribes: it is imported
# on first use, through `codec.encode_connect` / `codec.encode_subscribe`, and forgotten
# again with mote.link once connected on a board.
from mote.codec import _b, _check, _put_str, _room, encode_vbi, packet_size
from mote.compat import const

_CONNECT = const(1)
_U16_MAX = const(65535)


# CONNECT -------------------------------------------------------------------------------


def encode_connect(
    buf,
    off,
    client_id,
    clean_session=True,
    keepalive_s=0,
    will_topic=None,
    will_msg=None,
    will_qos=0,
    will_retain=False,
    user=None,
    password=None,
):
    """CONNECT (section 3.1). Strings may be str or bytes. Returns the offset past it;
    with buf None, writes nothing and returns off + the packet's length (its size).
    Raises ValueError for a field the standard does not allow."""
    client_id = _b(client_id)
    will_topic = _b(will_topic)
    will_msg = _b(will_msg if will_msg is not None else b"")
    user = _b(user)
    password = _b(password)
    if not 0 <= keepalive_s <= _U16_MAX:
        raise ValueError("bad keepalive", keepalive_s)
    if password is not None and user is None:
        raise ValueError("need user", None)  # MQTT-3.1.2-22: no password without a user
    if not client_id and not clean_session:
        raise ValueError("need clean", None)  # MQTT-3.1.3-7: an empty id needs a clean session
    flags = 0x02 if clean_session else 0
    rl = 12 + len(client_id)  # "MQTT", level, flags, keepalive, client id
    if will_topic is not None:
        _check(1, will_qos)
        if not will_topic:
            raise ValueError("empty topic", None)
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        rl += 4 + len(will_topic) + len(will_msg)
    if user is not None:
        flags |= 0x80
        rl += 2 + len(user)
    if password is not None:
        flags |= 0x40
        rl += 2 + len(password)
    if buf is None:
        return off + packet_size(rl)
    _room(buf, off, packet_size(rl))
    buf[off] = _CONNECT << 4
    off = encode_vbi(buf, off + 1, rl)
    off = _put_str(buf, off, b"MQTT")
    buf[off] = 4  # protocol level 4 is MQTT 3.1.1
    buf[off + 1] = flags
    buf[off + 2] = keepalive_s >> 8
    buf[off + 3] = keepalive_s & 0xFF
    off = _put_str(buf, off + 4, client_id)
    if will_topic is not None:
        off = _put_str(buf, off, will_topic)
        off = _put_str(buf, off, will_msg)
    if user is not None:
        off = _put_str(buf, off, user)
    if password is not None:
        off = _put_str(buf, off, password)
    return off


def encode_subscribe(buf, off, pid, filters, unsub=False):
    """SUBSCRIBE (section 3.8) for one or several (topic_filter, qos) pairs, or with
    unsub=True UNSUBSCRIBE (section 3.10) for one or several topic filters. Returns the
    offset past it; with buf None, writes nothing and returns off + its size."""
    _check(pid, 0)
    if not filters:
        raise ValueError("no filters", None)  # MQTT-3.8.3-3, MQTT-3.10.3-2
    rl = 2
    for f in filters:
        if not unsub:
            _check(1, f[1])
            f = f[0]
        if not f:
            raise ValueError("empty topic", None)  # an empty topic filter
        rl += (2 if unsub else 3) + len(_b(f))
    if buf is None:
        return off + packet_size(rl)
    _room(buf, off, packet_size(rl))
    buf[off] = 0xA2 if unsub else 0x82  # MQTT-3.8.1-1, MQTT-3.10.1-1: flags 0010
    off = encode_vbi(buf, off + 1, rl)
    buf[off] = pid >> 8
    buf[off + 1] = pid & 0xFF
    off += 2
    for f in filters:
        if unsub:
            off = _put_str(buf, off, _b(f))
        else:
            off = _put_str(buf, off, _b(f[0]))
            buf[off] = f[1]
            off += 1
    return off
