# firmware/app/offline.py: the byte-sized ring of readings kept while offline (and
# app.deep's copy of it in RTC memory).

import test_fw_fakes as _fx  # noqa: F401  (first: it puts firmware/ on sys.path)

# isort: split
from app.deep import ring_bytes, ring_load
from app.offline import Ring

from support import assert_no_alloc, raises


def _drain(r):
    out = []
    while len(r):
        out.append(r.peek())
        r.pop()
    return out


def test_records_come_out_in_order_with_their_times():
    r = Ring(200)
    for i in range(5):
        r.push(100 + i, b"reading %d" % i)
    assert len(r) == 5 and r.dropped == 0
    assert _drain(r) == [(100 + i, b"reading %d" % i) for i in range(5)]
    assert r.peek() is None and r.used == 0


def test_full_ring_drops_the_oldest_and_counts():
    r = Ring(64)  # 6-byte header + 10-byte payload: 4 records fit
    for i in range(10):
        r.push(i, b"payload-%02d" % i)
    assert len(r) == 4
    assert r.dropped == 6
    assert [t for t, _ in _drain(r)] == [6, 7, 8, 9]


def test_push_returns_how_many_it_dropped():
    r = Ring(30)
    assert r.push(1, b"x" * 10) == 0
    assert r.push(2, b"y" * 10) == 1


def test_records_wrap_around_the_buffer_end():
    r = Ring(50)
    seen = []
    for i in range(40):
        payload = b"#" * (i % 7) + b"%d" % i
        r.push(i, payload)
        if len(r) > 2:
            seen.append(r.peek())
            r.pop()
    seen.extend(_drain(r))
    times = [t for t, _ in seen]
    assert times == sorted(times)
    for t, p in seen:
        assert p == b"#" * (t % 7) + b"%d" % t


def test_too_big_is_dropped_and_counted():
    r = Ring(20)
    r.push(1, b"ok")
    assert r.push(2, b"z" * 15) == 1
    assert r.dropped == 1 and len(r) == 1
    z = Ring(0)
    z.push(1, b"a")
    assert len(z) == 0 and z.dropped == 1


def test_times_up_to_2_pow_30_survive_and_larger_ones_wrap():
    r = Ring(60)
    top = (1 << 30) - 1  # 34 years of node time: the largest small int on an ESP32
    r.push(top, b"a")
    r.push(86400 * 365 * 30, b"b")
    r.push(top + 6, b"c")  # stored modulo 2**30, never as a long int
    assert _drain(r) == [(top, b"a"), (86400 * 365 * 30, b"b"), (5, b"c")]


def test_push_and_pop_allocate_nothing_even_with_large_times():
    # On the 32-bit VM a 32-bit mask (0xFFFFFFFF) is a long int: masking with it, or
    # shifting a header byte into bit 31, allocates, which heap_lock turns into an error.
    r = Ring(64)
    payload = b"0123456789"
    t = (1 << 30) - 1

    def cycle():
        r.push(t, payload)
        r.push(t, payload)
        r.pop()
        r.pop()

    assert_no_alloc(cycle)
    assert len(r) == 0 and r.dropped == 0


def test_dropped_count_and_foreign_data_stay_small_ints():
    r = Ring(20)
    r.dropped = (1 << 30) - 2
    r.push(1, b"z" * 30)  # too big: counted, but the count saturates below 2**30
    assert r.dropped < (1 << 30)
    data = ring_bytes(r)
    assert data[0] <= 0x3F
    # A header whose top bits are set (not written by this ring) still reads below 2**30
    bad = b"\xff\xff\xff\xff" + b"\x00\x01\xff\xff\xff\xff" + b"x"
    r2 = Ring(20)
    ring_load(r2, bad)
    assert r2.dropped < (1 << 30) and r2.peek() == ((1 << 30) - 1, b"x")


def test_serialise_for_rtc_memory_and_back():
    r = Ring(64)
    for i in range(8):
        r.push(i, b"payload-%02d" % i)
    data = ring_bytes(r)
    r2 = Ring(64)
    ring_load(r2, data)
    assert r2.dropped == r.dropped
    assert _drain(r2) == _drain(r)
    small = Ring(40)  # keeps the newest that fit, counts the rest
    ring_load(small, data)
    assert [t for t, _ in _drain(small)] == [6, 7]
    assert small.dropped == 4 + 2
    raises(ValueError, ring_load, small, b"\x00")
    raises(ValueError, ring_load, small, data[:-3])
