# mote.compat_aio: what mote.aio needs from asyncio, on MicroPython and on CPython (the
# asyncio half of mote.compat). Only mote.aio imports it, so a blocking client never loads
# asyncio.
#
# DONE: an awaitable that is already complete, to return from a method that finished its
# work at once (`await c.publish(...)`): awaiting it allocates nothing on MicroPython.
# sleep_ms(ms): asyncio's millisecond sleep (allocation-free on MicroPython).
# Waiter: parks one task at a time until a socket is readable (or writable) or a deadline
# passes; wake() ends a park early.
import asyncio

from mote.compat import MICROPYTHON, ticks_add, ticks_diff, ticks_ms

if MICROPYTHON:
    from asyncio import core  # type: ignore[attr-defined]

    from micropython import const

    _IDLE_TICK_MS = const(60_000)  # the ticker's sleep while no task is parked

    def _finished():
        yield

    # Resuming a finished generator returns None at once: no StopIteration object is made.
    DONE = _finished()
    for _ in DONE:
        pass

    sleep_ms = asyncio.sleep_ms

    class _Park:
        # `await` it once after queueing the task on asyncio's I/O queue: the first step
        # yields (the task waits: whoever queued it wakes it), the second returns.
        def __init__(self):
            self.armed = False
            self.exc = StopIteration()

        def __iter__(self):
            return self

        def __next__(self):
            if self.armed:
                self.armed = False
                return None
            self.exc.__traceback__ = None
            raise self.exc

    class Waiter:
        """Parks one task at a time on a socket: park(sock, write, timeout_ms) queues the
        calling task on asyncio's I/O queue (as asyncio's own streams do) and returns the
        awaitable; a ticker task (made on the first park, then kept) wakes it at its
        deadline. A park allocates what asyncio's I/O queue makes for it (a 3-item list
        and a poller entry, about 48 B on an ESP32); the ticker allocates nothing."""

        def __init__(self):
            self._task = None  # the parked task
            self._until = ticks_ms()
            self._ticker = None
            self._tick_at = self._until  # when the ticker wakes next
            self._park = _Park()

        def park(self, sock, write, timeout_ms):
            q = core._io_queue
            if write:
                q.queue_write(sock)
            else:
                q.queue_read(sock)
            now = ticks_ms()
            self._task = core.cur_task
            self._until = until = ticks_add(now, timeout_ms)
            ticker = self._ticker
            if ticker is None:
                self._tick_at = until
                self._ticker = asyncio.create_task(self._tick())
            elif ticks_diff(until, self._tick_at) < 0:
                # The ticker sleeps past this deadline: bring it forward (as Task.cancel
                # brings a sleeping task forward).
                core._task_queue.remove(ticker)
                core._task_queue.push(ticker, until)
                self._tick_at = until
            self._park.armed = True
            return self._park

        def done(self):
            """The parked task calls this once it runs again, however it was woken."""
            self._task = None

        def wake(self):
            """End the park under way now (its socket is about to close, or has work)."""
            t = self._task
            self._task = None
            # Only while the task still waits on the I/O queue (which set its data to
            # itself): once its socket has woken it, the task is queued to run already, and
            # a task queued twice corrupts the task queue's heap (the VM crashes).
            if t is not None and t.data is core._io_queue:
                core._io_queue.remove(t)
                core._task_queue.push(t)

        def stop(self):
            """Stop the ticker (disconnect): nothing of the Waiter keeps running."""
            self.wake()
            t = self._ticker
            self._ticker = None
            if t is not None:
                t.cancel()

        async def _tick(self):
            while True:
                now = ticks_ms()
                if self._task is not None and ticks_diff(now, self._until) >= 0:
                    self.wake()
                left = ticks_diff(self._until, now) if self._task is not None else _IDLE_TICK_MS
                if left < 0:
                    left = 0
                self._tick_at = ticks_add(now, left)
                await asyncio.sleep_ms(left)

else:

    class _Done:
        def __await__(self):
            return iter(())

    DONE = _Done()

    async def sleep_ms(ms):
        await asyncio.sleep(ms / 1000 if ms > 0 else 0)

    class Waiter:
        """CPython: the event loop's reader/writer callbacks and a timeout."""

        def __init__(self):
            self._fut = None

        async def park(self, sock, write, timeout_ms):
            loop = asyncio.get_running_loop()
            if not write and getattr(sock, "pending", None) and sock.pending():
                return  # TLS: bytes already decrypted, the descriptor stays quiet
            fut = self._fut = loop.create_future()
            fd = sock.fileno()
            if write:
                loop.add_writer(fd, _wake, fut)
            else:
                loop.add_reader(fd, _wake, fut)
            try:
                await asyncio.wait_for(fut, timeout_ms / 1000)
            except asyncio.TimeoutError:
                pass
            finally:
                self._fut = None
                if write:
                    loop.remove_writer(fd)
                else:
                    loop.remove_reader(fd)

        def done(self):
            pass

        def wake(self):
            if self._fut is not None:
                _wake(self._fut)

        def stop(self):
            self.wake()

    def _wake(fut):
        if not fut.done():
            fut.set_result(None)
