# mote.aio: the asyncio client (layer: driver, beside mote.client). It is the blocking
# client's connection machine, session and dispatch, driven by one background task
# instead of blocking calls: that task owns the socket (keepalive, reconnect with the same
# backoff, resending, resubscription, WiFi first), and the application's tasks publish,
# subscribe and read messages. See docs/aio.md.
import asyncio
import errno

from mote.client import MQTTClient as _Client
from mote.client import _link
from mote.codec import MQTTException, ProtocolError
from mote.compat import const, ticks_diff, ticks_ms
from mote.compat_aio import DONE, Waiter, sleep_ms
from mote.topic import validate_filter

_DOWN = const(0)
_TCP = const(1)
_MQTT = const(2)
_UP = const(3)
_NO_ROOM = const(-1)
_NOT_CONNECTED = const(-2)
_N_SENT = const(3)
_N_Q0_DROPPED = const(5)
_STEP_MS = const(20)  # longest park while connecting (each step re-checks the deadline)
_POLL_MS = const(5)  # flush/subscribe/full outbox: how often to look again once spinning ends
_WIFI_MS = const(250)  # how often to look at a WiFi link that is down


class MQTTClient(_Client):
    """The asyncio client. The blocking client's arguments, plus:

    queue_len (16): messages() holds this many messages; while it is full the client
    stops reading the socket (the broker holds the rest, nothing is dropped), so a
    consumer that stalls longer than the keepalive loses the connection; one read can add
    what the receive buffer holds beyond queue_len. With set_callback(f) messages go to
    f(topic, msg) instead, from the background task.
    wifi: an object with isconnected() and, optionally, a non-blocking check() (hal's
    Network): while it is down the client does not try the broker, and calls check().
    spin_ms (20): for this long after any traffic the background task polls the socket
    between other tasks instead of parking on asyncio's I/O queue: answers and messages
    that follow quickly cost no allocation (a park costs about 48 B) and no wake-up
    latency. 0: always park.

    up and down are asyncio.Events set on every connection change (clear them after
    handling, as with mqtt_as)."""

    def __init__(self, *args, queue_len=16, wifi=None, spin_ms=20, **kw):
        super().__init__(*args, **kw)
        self._own = False  # connect() is a coroutine here: reconnects use the steps
        self.up = asyncio.Event()
        self.down = asyncio.Event()
        self.pid = 0  # the packet id of the last publish() (-1: QoS 0 dropped offline)
        self._q = []
        self._qlen = queue_len
        self._qev = asyncio.Event()
        self._room = asyncio.Event()
        self.cb = self._enqueue
        self._wifi = wifi
        self._spin_ms = spin_ms
        self._w = Waiter()
        self._task = None
        self._act = ticks_ms()  # last traffic: spinning lasts spin_ms from here
        self._error = None  # why the background task ended (reconnect=False, disconnect())
        # What the first connect() needs is loaded now, not inside it: loading code (and
        # compiling it, from .py) would hold the event loop up (connect() forgets it
        # again once connected).
        _link()
        from mote import codec_setup  # noqa: F401  (CONNECT's encoder)

    # Connection ---------------------------------------------------------------------

    async def connect(self, clean_session=True, timeout=None):
        """Connect (WiFi first, when wifi was given), waiting at most timeout seconds
        (default timeout_ms) per server, and start the background task. Returns True when
        the broker kept a session; raises as the blocking connect() does."""
        self._clean = clean_session
        if timeout is not None:
            self.timeout_ms = int(timeout * 1000)
        self._auto = 0
        await self._stop()
        self._close()
        self._error = None
        err = Exception("no server")
        for _ in range(len(self._servers)):
            try:
                await self._wifi_up(self.timeout_ms)
                steps = _link()  # the connection machine (forgotten again once connected)
                steps.begin(self)
                while self._cs != _UP:
                    steps.step(self, 0)
                    if self._cs != _UP:
                        await self._park_step()
                return self._started()
            except (OSError, MQTTException, ValueError) as e:
                if self._cs == _UP:
                    if not isinstance(e, (OSError, ProtocolError)):
                        raise
                    self._lost(e)  # lost right after CONNACK: the task reconnects
                    return self._started()
                self._close()
                if isinstance(e, MQTTException) and not isinstance(e, ProtocolError):
                    raise
                err = e
            self._srv = (self._srv + 1) % len(self._servers)
            self._addr = None
        raise err

    def _started(self):
        self._unlink()
        self._ever = True
        self._act = ticks_ms()
        if self._cs == _UP:
            self.up.set()
        self._task = asyncio.create_task(self._run())
        return self._s.session_present

    async def _wifi_up(self, timeout_ms):
        w = self._wifi
        if w is None:
            return
        t0 = ticks_ms()
        while not w.isconnected():
            if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                raise OSError(errno.ETIMEDOUT, "wifi down")
            if hasattr(w, "check"):
                w.check()
            await sleep_ms(_WIFI_MS)

    async def _park_step(self):
        # Wait for the socket while an attempt is under way (at most _STEP_MS, so the
        # attempt's deadline is checked by the next step).
        left = ticks_diff(self._deadline, ticks_ms())
        if left > _STEP_MS:
            left = _STEP_MS
        if left < 1:
            left = 1
        write = self._cs == _TCP or self._s.tx_len > 0
        try:
            await self._w.park(self.sock, write, left)
        finally:
            self._w.done()

    def _close(self):
        self._w.wake()  # before the socket goes: a task parked on it must not sleep on
        super()._close()

    async def disconnect(self):
        """Stop the background task, send DISCONNECT (the broker then drops the Last
        Will) and close. Nothing keeps running afterwards."""
        await self._stop()
        if self._cs == _UP:
            s = self._s
            s.disconnect()
            try:
                t0 = ticks_ms()
                while s.tx_len and ticks_diff(ticks_ms(), t0) < self.timeout_ms:
                    if not self._write():
                        await self._park(True, _STEP_MS)
                # As the blocking client: wait briefly for the broker to close first.
                self._interest(False)
                while ticks_diff(ticks_ms(), t0) < 250:
                    await self._park(False, 250 - ticks_diff(ticks_ms(), t0))
                    if self._read_raw() == 0:  # what still comes in is discarded
                        break
            except OSError:
                pass
        self._ever = False
        self._close()
        self._w.stop()
        self.down.set()
        self._error = OSError(errno.ENOTCONN, "disconnected")
        self._qev.set()  # messages() ends once what it holds is read

    def _read_raw(self):
        from mote.compat import read_some

        s = self._s
        return read_some(self.sock, s.rx_mv, len(s.rx_buf))

    async def _park(self, write, ms):
        try:
            await self._w.park(self.sock, write, ms)
        finally:
            self._w.done()

    async def _stop(self):
        t = self._task
        self._task = None
        if t is not None and t is not asyncio.current_task():
            t.cancel()
            try:
                await t
            except BaseException:  # CancelledError (an Exception on MicroPython)
                pass

    # The background task ------------------------------------------------------------

    async def _run(self):
        s = self._s
        w = self._w
        try:
            while True:  # (each park is followed by w.done(); the finally covers a cancel)
                try:
                    if self._cs != _UP:
                        if not (self._reconnect and self._ever):
                            return
                        await self._reconnecting()
                        continue
                    if len(self._q) >= self._qlen:
                        self._room.clear()
                        await self._room.wait()
                        continue
                    n = self._handled
                    self._service(0)
                except Exception as e:
                    if self._cs != _UP and not (self._reconnect and self._ever):
                        # reconnect=False: gone for good until connect() is called again
                        self._error = e
                        self._task = None
                        self._close()
                        self.down.set()
                        self._qev.set()
                        return
                    # The application's callback raised: say so, keep the connection.
                    print("mote.aio: the message callback raised", repr(e))
                    continue
                now = ticks_ms()
                if self._handled != n:
                    self._act = now
                if self._cs != _UP:
                    self.down.set()
                    continue
                if s.tx_len:  # the socket's buffer is full
                    await w.park(self.sock, True, 1000)
                    w.done()
                elif ticks_diff(now, self._act) < self._spin_ms:
                    await sleep_ms(0)  # traffic lately: more is likely (an answer, a message)
                else:
                    due = s.ping_due_in(now)
                    await w.park(self.sock, False, due + 1 if due >= 0 else 60_000)
                    w.done()
        finally:
            w.done()

    async def _reconnecting(self):
        # Not connected: WiFi first, then one non-blocking step of the blocking client's
        # connection machine (an attempt when its backoff allows, or the next step of the
        # one under way), then wait for the socket or the next try.
        w = self._wifi
        if w is not None and not w.isconnected():
            if self._cs != _DOWN:
                self._close()
            if hasattr(w, "check"):
                w.check()
            await sleep_ms(_WIFI_MS)
            return
        self._advance(0)
        if self._cs == _UP:
            self._act = ticks_ms()
            self.up.set()
        elif self._cs == _DOWN:
            left = ticks_diff(self._next_try, ticks_ms())
            await sleep_ms(min(max(left, 1), 1000))
        else:
            await self._park_step()

    # Publishing ---------------------------------------------------------------------

    def publish(self, topic, msg, retain=False, qos=0):
        """`await c.publish(topic, msg, retain=False, qos=0)`: returns once the packet is
        written (or queued in the outbox while disconnected), as the blocking client
        does; c.pid is its packet id. QoS 1/2 stay in the outbox until acknowledged: await
        flush() for that. A full outbox waits for room (OSError(ENOBUFS) after
        timeout_ms). Allocates nothing for a bytes topic and bytes/bytearray msg."""
        if self._cs != _UP and not self._reconnect:
            raise OSError(errno.ENOTCONN)
        pid = self._s.publish(topic, msg, qos, retain)
        if pid == _NO_ROOM:
            return self._publish_later(topic, msg, retain, qos)
        return self._sent(pid, qos)

    async def _publish_later(self, topic, msg, retain, qos):
        t0 = ticks_ms()
        while True:
            if ticks_diff(ticks_ms(), t0) >= self.timeout_ms:
                raise OSError(errno.ENOBUFS, "outbox full")
            await self._pause(t0)
            pid = self._s.publish(topic, msg, qos, retain)
            if pid != _NO_ROOM:
                await self._sent(pid, qos)
                return

    def _sent(self, pid, qos):
        s = self._s
        self.pid = pid
        if pid == _NOT_CONNECTED:
            self._n[_N_Q0_DROPPED] += 1
            self.pid = -1
            return DONE
        self._n[_N_SENT] += 1
        if self._cs == _UP:
            if self._adapt:
                if qos:
                    if self._nagle:
                        self._nagle_set(False)
                elif not self._nagle and self._w_rx and not s.pending() and not s.ping_out:
                    self._nagle_set(True)
            try:
                self._write()
                s.tick(ticks_ms())
            except (OSError, ProtocolError) as e:
                self._lost(e)
                self.down.set()
                return DONE
            self._act = ticks_ms()
            if s.tx_len:
                if s.holds_caller_data():
                    return self._drain()  # msg must be written before publish returns
                self._w.wake()  # the background task waits for room in the socket
        return DONE

    async def _drain(self):
        t0 = ticks_ms()
        while self._s.tx_len and self._cs == _UP:
            if ticks_diff(ticks_ms(), t0) >= self.timeout_ms:
                self._lost(OSError(errno.ETIMEDOUT, "write timed out"))
                return
            if not self._write():
                await self._park(True, _STEP_MS)

    def _pause(self, t0):
        # Let the background task run: at once while spinning, else every _POLL_MS.
        return sleep_ms(0 if ticks_diff(ticks_ms(), t0) < self._spin_ms else _POLL_MS)

    async def flush(self, timeout_ms=None):
        """Wait until every QoS 1/2 message is acknowledged or timeout_ms passes (default
        timeout_ms). Returns how many are still pending."""
        if timeout_ms is None:
            timeout_ms = self.timeout_ms
        if self._nagle and self._adapt and self.sock is not None:
            self._nagle_set(False)
        t0 = ticks_ms()
        while self._s.pending() and ticks_diff(ticks_ms(), t0) < timeout_ms:
            await self._pause(t0)
        return self._s.pending()

    # Subscriptions ------------------------------------------------------------------

    async def subscribe(self, topic, qos=0):
        """Subscribe and wait for SUBACK: the granted QoS; a refusal raises
        MQTTException(0x80). Renewed after a reconnect when the broker kept no session."""
        t = validate_filter(topic)
        if not 0 <= qos <= 2:
            raise ValueError("QoS must be 0, 1 or 2", qos)
        granted = await self._exchange(t, qos)
        for sub in self._subs:
            if sub[0] == t:
                sub[1] = qos
                sub[2] = 0
                break
        else:
            self._subs.append([t, qos, 0])
        return granted

    async def unsubscribe(self, topic):
        """Unsubscribe and wait for UNSUBACK."""
        t = validate_filter(topic)
        self._subs = [x for x in self._subs if x[0] != t]
        if self._rs is not None and self._rs[0] == t:
            self._rs = None
        await self._exchange(t, -1)

    async def _exchange(self, t, qos):
        # SUBSCRIBE (qos 0..2) or UNSUBSCRIBE (-1) and its acknowledgement, sent again on
        # the next connection if this one breaks first; OSError(ETIMEDOUT) after timeout_ms.
        s = self._s
        unsub = qos < 0
        filters = [t] if unsub else [(t, qos)]
        t0 = ticks_ms()
        pid = 0
        conn = -1
        while True:
            if ticks_diff(ticks_ms(), t0) >= self.timeout_ms:
                raise OSError(errno.ETIMEDOUT)
            if self._error is not None:
                raise self._error
            if self._cs == _UP:
                if conn != self.reconnects:  # (re)send on this connection
                    pid = s.subscribe(filters, unsub)
                    if pid > 0:
                        conn = self.reconnects
                        self._ack_pid = 0
                        self._act = ticks_ms()
                        try:
                            self._write()
                        except OSError as e:
                            self._lost(e)
                        self._w.wake()
                elif self._ack_pid == pid:
                    if not unsub and self._granted == 0x80:
                        raise MQTTException(0x80)
                    return self._granted
            elif not (self._reconnect and self._ever):
                raise OSError(errno.ENOTCONN)
            await self._pause(t0)

    # Receiving ----------------------------------------------------------------------

    def _enqueue(self, topic, msg):
        self._q.append((topic, msg, self.msg_retain))
        self._qev.set()

    def messages(self):
        """`async for topic, msg, retained in c.messages()`: received messages (bytes) in
        order, unless set_callback() took them."""
        return self

    def __aiter__(self):
        return self

    async def __anext__(self):
        q = self._q
        while not q:
            if self._error is not None and self._task is None:
                raise StopAsyncIteration  # disconnected, or lost with reconnect=False
            self._qev.clear()
            await self._qev.wait()
        item = q.pop(0)
        if len(q) < self._qlen:
            self._room.set()
        return item

    def check_msg(self):
        raise NotImplementedError("mote.aio: the background task reads the socket")

    def wait_msg(self):
        raise NotImplementedError("mote.aio: use `async for ... in c.messages()`")
