# compat: ticks arithmetic across the wrap, and the stream helpers' None/0/count contract.
from mote.compat import read_some, ticks_add, ticks_diff, write_some
from support import FakeSocket


def test_ticks_diff_is_signed_across_the_wrap():
    t = ticks_add(0, -5)
    later = ticks_add(t, 10)
    assert ticks_diff(later, t) == 10
    assert ticks_diff(t, later) == -10
    assert later < t  # it wrapped


def test_read_some_reports_would_block_closed_and_count():
    sock = FakeSocket([b"abc", None, b""])
    buf = bytearray(8)
    mv = memoryview(buf)
    assert read_some(sock, mv, 8) == 3
    assert bytes(buf[:3]) == b"abc"
    assert read_some(sock, mv, 8) is None
    assert read_some(sock, mv, 8) == 0


def test_write_some_honours_offset_length_and_short_writes():
    sock = FakeSocket(max_write=2, write_script=[0])
    data = b"0123456789"
    assert not write_some(sock, data, 3, 4)
    assert write_some(sock, data, 3, 4) == 2
    assert bytes(sock.sent) == b"34"
