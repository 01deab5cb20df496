# Test support shared by both interpreters: raises, skip (missing_tool: a failure under
# CI=true), a seeded RNG, a fake clock, a fake socket and the heap_lock allocation check.
# No pytest import on MicroPython.
import sys

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    import gc

    import micropython

    class SkipTest(Exception):
        pass

    def skip(reason):
        raise SkipTest(reason)

    def missing_tool(reason):
        skip(reason)

else:
    import pytest

    SkipTest = pytest.skip.Exception

    def skip(reason):
        pytest.skip(reason)

    def missing_tool(reason):
        """A tool this test needs is not installed: skip, except under CI=true, where that
        fails the test (a CI run must run every test)."""
        import mpclient

        if mpclient.in_ci():
            pytest.fail("CI=true and " + reason, pytrace=False)
        pytest.skip(reason)


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail unless it is an exc_type."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("did not raise " + exc_type.__name__)


def only_micropython(reason="needs micropython.heap_lock"):
    if not MICROPYTHON:
        skip(reason + " (CPython)")


def assert_no_alloc(fn, *args, before=None):
    """Run fn(*args) once to warm up, then again with the heap locked: any allocation
    raises MemoryError. before(), when given, runs (unlocked) ahead of each call. Skips on
    CPython, which has no heap lock."""
    only_micropython()
    if before is not None:
        before()
    fn(*args)
    if before is not None:
        before()
    gc.collect()
    # A call with *args builds its argument array on the heap: call plainly when possible.
    micropython.heap_lock()
    try:
        if args:
            fn(*args)
        else:
            fn()
    except MemoryError:
        raise AssertionError("allocated: " + getattr(fn, "__name__", "?"))
    finally:
        micropython.heap_unlock()  # whatever fn raised: later tests need the heap


class Rng:
    """xorshift32: the same sequence on both interpreters for the same seed."""

    def __init__(self, seed):
        self.seed = seed
        self.s = (seed & 0xFFFFFFFF) or 0x9E3779B9

    def next32(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def below(self, n):
        return self.next32() % n if n > 0 else 0

    def between(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def bytes(self, n):
        b = bytearray(n)
        for i in range(n):
            b[i] = self.next32() & 0xFF
        return bytes(b)


class FakeClock:
    """Milliseconds on the interpreter's tick scale, starting just below the wrap."""

    def __init__(self, before_wrap_ms=1000):
        from mote.compat import ticks_add

        self._add = ticks_add
        self.now = ticks_add(0, -before_wrap_ms)

    def advance(self, ms):
        self.now = self._add(self.now, ms)
        return self.now


class FakeSocket:
    """A scripted non-blocking stream: reads come from `incoming` chunks (None means
    "would block" once, b"" means closed); writes land in `sent`, at most `max_write`
    bytes per call (0 or None entries in `write_script` mean "would block")."""

    def __init__(self, incoming=(), max_write=1 << 30, write_script=()):
        self.incoming = list(incoming)
        self.sent = bytearray()
        self.max_write = max_write
        self.write_script = list(write_script)
        self.closed = False

    def recv_into(self, mv, n):
        if not self.incoming:
            raise BlockingIOError(11, "would block") if not MICROPYTHON else OSError(11)
        chunk = self.incoming[0]
        if chunk is None:
            self.incoming.pop(0)
            raise BlockingIOError(11, "would block") if not MICROPYTHON else OSError(11)
        if not chunk:
            return 0
        k = min(n, len(chunk))
        mv[0:k] = chunk[:k]
        if k == len(chunk):
            self.incoming.pop(0)
        else:
            self.incoming[0] = chunk[k:]
        return k

    def readinto(self, mv, n):
        return self.recv_into(mv, n)

    def _write(self, buf, off, n):
        if self.write_script:
            step = self.write_script.pop(0)
            if not step:
                return None
            n = min(n, step)
        n = min(n, self.max_write)
        self.sent += bytes(memoryview(buf)[off : off + n])
        return n

    def write(self, buf, off=0, n=None):
        if n is None:
            n = len(buf) - off
        return self._write(buf, off, n)

    def send(self, data):
        return self._write(data, 0, len(data))

    def close(self):
        self.closed = True


def hexb(s):
    """bytes from hex with spaces between field groups (both interpreters)."""
    return bytes.fromhex(s.replace(" ", ""))


def repo_path(*parts):
    """A path inside the repository, from this file's place (host_tests/ is one level
    down), for tests that read repository files such as boards/<name>/board.py."""
    here = __file__.rpartition("/")[0] or "."
    if here == ".":
        root = ".."
    elif "/" in here:
        root = here.rpartition("/")[0] or "/"
    else:
        root = "."
    return "/".join((root,) + parts)


class StepClock:
    """A fake ticks_ms clock plus a sleep that advances it: clock.now_ms() and
    clock.sleep(ms) for code that takes clock and sleep arguments. sleeps records each."""

    def __init__(self, before_wrap_ms=1000):
        self._clock = FakeClock(before_wrap_ms)
        self.sleeps = []

    def now_ms(self):
        return self._clock.now

    def sleep(self, ms):
        self.sleeps.append(ms)
        self._clock.advance(ms)

    def advance(self, ms):
        return self._clock.advance(ms)
