# mote.snapshot: a Session's state to and from bytes, for deep sleep (RTC memory) or a
# reset. Imported on first use: most programs never save a session, so it costs them
# no RAM. Functions take the Session as their first argument (they read its outbox).
#
# Layout: MOTE, version, pid counter (2), slot count, in2 count, then per slot: state,
# sent flag, pid (2), length (2), packet bytes; then in2 pids (2 each); CRC-16 (2).
from mote import codec
from mote.codec import Packet, ProtocolError
from mote.compat import const

_MAGIC = b"MOTE"
_VERSION = const(1)
_FREE = const(0)  # slot states, as in mote.session
_Q1 = const(1)
_Q2_COMP = const(3)
_CONNECTING = const(1)  # session states, as in mote.session
_CONNECTED = const(2)
_PUBLISH = const(3)  # packet type


def crc16(buf, off, n):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of buf[off:off+n]."""
    crc = 0xFFFF
    for i in range(off, off + n):
        crc ^= buf[i] << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def size(s):
    """Bytes save() needs now."""
    n = 10 + 2
    i = s._first
    for _ in range(s._count):
        if s._s_state[i] != _FREE:
            n += 6 + s._s_len[i]
        i = (i + 1) % s.max_inflight
    for pid in s._in2:
        if pid:
            n += 2
    return n


def save(s, buf):
    """Write the session state into buf; returns the length. Raises ValueError if buf
    is too small. Allocates nothing."""
    need = size(s)
    if need > len(buf):
        raise ValueError("snapshot buffer too small", need)
    buf[0:4] = _MAGIC
    buf[4] = _VERSION
    buf[5] = s._pid >> 8
    buf[6] = s._pid & 0xFF
    buf[7] = s._live
    nin = 0
    for pid in s._in2:
        if pid:
            nin += 1
    buf[8] = nin
    buf[9] = 0
    p = 10
    i = s._first
    for _ in range(s._count):
        st = s._s_state[i]
        if st != _FREE:
            ln = s._s_len[i]
            buf[p] = st
            buf[p + 1] = 1 if s._s_flag[i] & 2 else 0  # sent once (session's _F_TX)
            buf[p + 2] = s._s_pid[i] >> 8
            buf[p + 3] = s._s_pid[i] & 0xFF
            buf[p + 4] = ln >> 8
            buf[p + 5] = ln & 0xFF
            o = s._s_off[i]
            for k in range(ln):
                buf[p + 6 + k] = s._ob[o + k]
            p += 6 + ln
        i = (i + 1) % s.max_inflight
    for pid in s._in2:
        if pid:
            buf[p] = pid >> 8
            buf[p + 1] = pid & 0xFF
            p += 2
    c = crc16(buf, 0, p)
    buf[p] = c >> 8
    buf[p + 1] = c & 0xFF
    return p + 2


def load(s, buf, n=None):
    """Restore what save() wrote. Everything is checked first: a corrupt, truncated
    or foreign snapshot raises ValueError and changes nothing. Only while not
    connected."""
    if n is None:
        n = len(buf)
    if s.state == _CONNECTED or s.state == _CONNECTING:
        raise ValueError("load() while connected", s.state)
    if not hasattr(buf, "find"):
        buf = bytes(buf[0:n])  # a memoryview (RTC memory): codec.decode needs find()
    if n < 12 or bytes(buf[0:4]) != _MAGIC:
        raise ValueError("not a mote session snapshot", n)
    if buf[4] != _VERSION:
        raise ValueError("unknown snapshot version", buf[4])
    if crc16(buf, 0, n - 2) != (buf[n - 2] << 8) | buf[n - 1]:
        raise ValueError("snapshot checksum mismatch", n)
    nslots = buf[7]
    nin = buf[8]
    if nslots > s.max_inflight:
        raise ValueError("snapshot has more messages than max_inflight", nslots)
    if nin > len(s._in2):
        raise ValueError("snapshot has more QoS 2 ids than qos2_in", nin)
    p = 10
    total = 0
    pkt = Packet()
    for _ in range(nslots):
        if p + 6 > n - 2:
            raise ValueError("snapshot truncated", p)
        st = buf[p]
        pid = (buf[p + 2] << 8) | buf[p + 3]
        ln = (buf[p + 4] << 8) | buf[p + 5]
        if not _Q1 <= st <= _Q2_COMP or not pid or p + 6 + ln > n - 2:
            raise ValueError("snapshot slot corrupt", p)
        try:
            got = codec.decode(buf, p + 6, p + 6 + ln, pkt)
        except ProtocolError:
            got = 0
        want_qos = 1 if st == _Q1 else 2
        if got != ln or pkt.type != _PUBLISH or pkt.pid != pid or pkt.qos != want_qos:
            raise ValueError("snapshot packet corrupt", pid)
        total += ln
        p += 6 + ln
    if total > len(s._ob):
        raise ValueError("snapshot larger than the outbox", total)
    if p + 2 * nin + 2 != n:
        raise ValueError("snapshot length mismatch", n)
    # Valid: apply.
    s._first = s._count = s._live = 0
    s._pid = (buf[5] << 8) | buf[6]
    p = 10
    off = 0
    for i in range(nslots):
        ln = (buf[p + 4] << 8) | buf[p + 5]
        s._s_state[i] = buf[p]
        s._s_flag[i] = 2 if buf[p + 1] else 0  # _F_TX; nothing to send until CONNACK
        s._s_pid[i] = (buf[p + 2] << 8) | buf[p + 3]
        s._s_off[i] = off
        s._s_len[i] = ln
        s._ob[off : off + ln] = buf[p + 6 : p + 6 + ln]
        off += ln
        p += 6 + ln
    s._count = s._live = nslots
    for k in range(len(s._in2)):
        s._in2[k] = 0
    for k in range(nin):
        s._in2[k] = (buf[p] << 8) | buf[p + 1]
        p += 2
