# firmware/app/log.py: the uptime prefix keeps growing across the ticks wrap and past the
# 6.2 days after which a difference from one start tick turns negative.
import test_fw_fakes as _fx  # noqa: F401  (first: it puts firmware/ on sys.path)

# isort: split
from app import log

from support import FakeClock, assert_no_alloc

_saved = []


def _with_clock(before_wrap_ms=1000):
    _saved[:] = log.uptime()
    clock = FakeClock(before_wrap_ms)
    log.set_clock(lambda: clock.now)
    return clock


def _restore():
    # Back to the real clock, and to the uptime before the test (the log of the tests that
    # follow would otherwise say a month has passed).
    from mote.compat import ticks_ms

    log.set_clock(ticks_ms)
    log._secs, log._ms = _saved


def test_uptime_runs_on_across_wraps_for_weeks():
    clock = _with_clock()
    try:
        s0, ms0 = log.uptime()
        seen = []
        for _ in range(30 * 24):  # 30 days, an hour at a time: two and a half wraps
            clock.advance(3_600_000)
            seen.append(log.uptime())
        assert seen[0] == (s0 + 3600, ms0)
        assert seen[-1] == (s0 + 30 * 86400, ms0)
        assert all(seen[i + 1][0] > seen[i][0] for i in range(len(seen) - 1))
        assert all(s >= 0 for s, _ in seen)
    finally:
        _restore()


def test_milliseconds_carry_into_seconds():
    clock = _with_clock(before_wrap_ms=300)
    try:
        s0, ms0 = log.uptime()
        clock.advance(999 - ms0)
        assert log.uptime() == (s0, 999)
        clock.advance(2)  # crosses the wrap and a second
        assert log.uptime() == (s0 + 1, 1)
    finally:
        _restore()


def test_tick_allocates_nothing():
    clock = _with_clock()
    try:

        def step():
            clock.now = clock._add(clock.now, 250)
            log.tick()

        assert_no_alloc(step)
    finally:
        _restore()
