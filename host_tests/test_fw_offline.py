# firmware/app/offline.py: the byte-sized ring of readings kept while offline.

import test_fw_fakes as _fx  # noqa: F401  (first: it puts firmware/ on sys.path)

# isort: split
from app.offline import Ring

from support import raises


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


def test_large_times_survive():
    r = Ring(40)
    r.push(0xFFFFFFFF, b"a")
    r.push(86400 * 365 * 30, b"b")
    assert _drain(r) == [(0xFFFFFFFF, b"a"), (86400 * 365 * 30, b"b")]


def test_serialise_for_rtc_memory_and_back():
    r = Ring(64)
    for i in range(8):
        r.push(i, b"payload-%02d" % i)
    data = r.to_bytes()
    r2 = Ring(64)
    r2.load(data)
    assert r2.dropped == r.dropped
    assert _drain(r2) == _drain(r)
    small = Ring(40)  # keeps the newest that fit, counts the rest
    small.load(data)
    assert [t for t, _ in _drain(small)] == [6, 7]
    assert small.dropped == 4 + 2
    raises(ValueError, small.load, b"\x00")
    raises(ValueError, small.load, data[:-3])
