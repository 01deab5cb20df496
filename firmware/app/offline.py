# app.offline: readings kept while the link is down (layer: firmware). A ring of records
# in one bytearray sized in bytes at construction: pushing into a full ring drops the
# oldest records first and counts them; records come out oldest first.
#
# Record layout: u16 payload length, u32 sample time (node seconds), payload bytes. A
# record may wrap around the end of the buffer. Times and the dropped count are kept
# below 2**30 (34 years of node time): an ESP32's small ints end there and anything
# larger, even a 32-bit mask, would allocate. push() and pop() allocate nothing unless a
# payload wraps around the buffer end. Saving the records to RTC memory and loading them
# back is deep-sleep work: app.deep (ring_bytes, ring_load).
from mote.compat import const

_HDR = const(6)
_T_MASK = const(0x3FFFFFFF)  # 2**30 - 1: the largest small int on a 32-bit port


class Ring:
    def __init__(self, capacity_bytes):
        """A ring of capacity_bytes (allocated here, once). capacity 0 keeps nothing."""
        self.capacity = capacity_bytes
        self._buf = bytearray(capacity_bytes)
        self._head = 0  # offset of the oldest record
        self.used = 0  # bytes in use, headers included
        self.count = 0  # records held
        self.dropped = 0  # records lost: pushed out by newer ones, or too big to keep

    def __len__(self):
        return self.count

    def _put(self, off, data):
        cap = self.capacity
        n = len(data)
        first = min(n, cap - off)
        self._buf[off : off + first] = data[:first] if first < n else data
        if first < n:
            self._buf[0 : n - first] = data[first:]

    def _get(self, off, n):
        cap = self.capacity
        if off + n <= cap:
            return bytes(self._buf[off : off + n])
        return bytes(self._buf[off:cap]) + bytes(self._buf[0 : n - (cap - off)])

    def _byte(self, off):
        return self._buf[off % self.capacity]

    def _hdr_len(self, off):
        return (self._byte(off) << 8) | self._byte(off + 1)

    def _hdr_time(self, off):
        return (
            ((self._byte(off + 2) & 0x3F) << 24)
            | (self._byte(off + 3) << 16)
            | (self._byte(off + 4) << 8)
            | self._byte(off + 5)
        )

    def push(self, t_s, payload):
        """Keep payload (bytes) sampled at node time t_s (seconds, kept modulo 2**30).
        Drops the oldest records until it fits; a payload that can never fit is dropped
        and counted. Returns the number of records dropped by this call."""
        n = len(payload)
        need = _HDR + n
        if need > self.capacity or n > 0xFFFF:
            self._count_dropped(1)
            return 1
        lost = 0
        while self.capacity - self.used < need:
            self.pop()
            lost += 1
        self._count_dropped(lost)
        cap = self.capacity
        buf = self._buf
        off = (self._head + self.used) % cap
        t_s &= _T_MASK
        buf[off] = n >> 8
        buf[(off + 1) % cap] = n & 0xFF
        buf[(off + 2) % cap] = t_s >> 24
        buf[(off + 3) % cap] = (t_s >> 16) & 0xFF
        buf[(off + 4) % cap] = (t_s >> 8) & 0xFF
        buf[(off + 5) % cap] = t_s & 0xFF
        self._put((off + _HDR) % cap, payload)
        self.used += need
        self.count += 1
        return lost

    def _count_dropped(self, n):
        if self.dropped < _T_MASK - n:  # saturates instead of growing a long int
            self.dropped += n

    def peek(self):
        """(t_s, payload bytes) of the oldest record, or None when empty. Allocates."""
        if not self.count:
            return None
        h = self._head
        return self._hdr_time(h), self._get((h + _HDR) % self.capacity, self._hdr_len(h))

    def pop(self):
        """Forget the oldest record (after it was delivered)."""
        if not self.count:
            return
        n = self._hdr_len(self._head)
        self._head = (self._head + _HDR + n) % self.capacity
        self.used -= _HDR + n
        self.count -= 1
        if not self.count:
            self._head = 0
            self.used = 0
