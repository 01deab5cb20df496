# A fault-injecting TCP proxy for the broker tests (CPython only): sits on a free loopback
# port between a client and the broker and cuts, stalls or blackholes the traffic on demand.
import random
import select
import socket
import struct
import threading
import time

UP = "up"  # client -> broker
DOWN = "down"  # broker -> client
ANY = "any"
_POLL_S = 0.02  # how often idle pump threads look at the control flags
_CHUNK = 4096


class _Framer:
    """Follows MQTT fixed headers in one direction of a stream, without keeping bodies."""

    def __init__(self):
        self.pos = 0  # stream offset of the next byte fed
        self.start = 0  # stream offset where the current packet began
        self.hdr = bytearray()
        self.body_left = 0

    def feed(self, data):
        """Return [(start_offset, packet_type, total_len)] for each fixed header completed
        in data; offsets are stream positions."""
        done = []
        i, n = 0, len(data)
        while i < n:
            if self.body_left:
                k = min(self.body_left, n - i)
                self.body_left -= k
                i += k
                continue
            if not self.hdr:
                self.start = self.pos + i
            b = data[i]
            self.hdr.append(b)
            i += 1
            if len(self.hdr) >= 2 and (b & 0x80 == 0 or len(self.hdr) == 5):
                rl = 0
                for j, d in enumerate(self.hdr[1:]):
                    rl |= (d & 0x7F) << (7 * j)
                done.append((self.start, self.hdr[0] >> 4, len(self.hdr) + rl))
                self.body_left = rl
                self.hdr = bytearray()
        self.pos += n
        return done


class _Conn:
    def __init__(self, proxy, num, client, upstream):
        self.proxy = proxy
        self.num = num
        self.socks = {UP: client, DOWN: upstream}  # keyed by the direction they feed
        self.framers = {UP: _Framer(), DOWN: _Framer()}
        self.cut_pos = {UP: None, DOWN: None}  # pending message-mode cut (stream offset)
        self.closed = threading.Event()
        self.threads = []

    def close(self, reset=False):
        if self.closed.is_set():
            return
        self.closed.set()
        for s in self.socks.values():
            try:
                if reset:  # RST instead of FIN
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class FaultProxy:
    """TCP proxy 127.0.0.1:port -> target. Directions: UP (client to broker), DOWN.

    Counters: bytes_up, bytes_down (forwarded), dropped (blackholed bytes), connections
    (accepted), cuts. Control methods are thread-safe and take effect on the next chunk."""

    def __init__(self, target_port, target_host="127.0.0.1", reset=False):
        if target_host not in ("127.0.0.1", "localhost"):
            raise ValueError("loopback only", target_host)
        self.target = ("127.0.0.1", target_port)
        self.host = "127.0.0.1"
        self.reset = reset  # cut with RST rather than FIN
        self._lock = threading.Lock()
        self._resumed = threading.Condition(self._lock)
        self._stalled = False
        self._blackhole = False
        self._refuse = False
        self._budget = {UP: None, DOWN: None, ANY: None}  # bytes left before a cut
        self._random = None  # [rng, lo, hi, unit, left]
        self._conns = []
        self._closing = False
        self.bytes_up = self.bytes_down = self.dropped = 0
        self.connections = self.cuts = 0
        self.packets = {UP: 0, DOWN: 0}  # MQTT packets seen (headers complete)
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((self.host, 0))
        self._lsock.listen(16)
        self.port = self._lsock.getsockname()[1]
        self._acceptor = threading.Thread(
            target=self._accept_loop, daemon=True, name="faultproxy-accept"
        )
        self._acceptor.start()

    # -- control --------------------------------------------------------------------------

    def cut_after(self, n, direction=ANY):
        """Forward exactly n more bytes in `direction` (UP, DOWN or ANY: both together,
        counted from now, across connections), then cut that connection."""
        with self._lock:
            self._budget[direction] = n
            if n == 0:
                self._cut_all_locked()
                self._budget[direction] = None

    def cut_now(self):
        """Close every open connection, both sides, right now."""
        with self._lock:
            self._cut_all_locked()

    def stall(self):
        """Stop forwarding (sockets stay open; TCP back-pressure builds up)."""
        with self._lock:
            self._stalled = True

    def resume(self):
        """Undo stall(): the held bytes go through."""
        with self._lock:
            self._stalled = False
            self._resumed.notify_all()

    def blackhole(self, on=True):
        """Silently drop every byte both ways while on; sockets stay open."""
        with self._lock:
            self._blackhole = on

    def refuse(self, on=True):
        """While on, accept new connections and close them at once (a broker that is down)."""
        with self._lock:
            self._refuse = on

    def random_cuts(self, lo, hi, seed, unit="bytes"):
        """Cut every lo..hi bytes (both directions together) or, with unit="messages",
        every lo..hi PUBLISH packets, at a random byte inside the last one. Seeded: the
        same seed gives the same gaps. random_cuts(0, 0, 0) turns it off."""
        if unit not in ("bytes", "messages"):
            raise ValueError("unit", unit)
        with self._lock:
            if hi <= 0:
                self._random = None
                return
            rng = random.Random(seed)
            self._random = [rng, lo, hi, unit, rng.randint(lo, hi)]

    def heal(self):
        """Clear every fault (pending cuts, random cuts, stall, blackhole, refuse)."""
        with self._lock:
            self._budget = {UP: None, DOWN: None, ANY: None}
            self._random = None
            self._blackhole = self._refuse = False
            self._stalled = False
            for c in self._conns:
                c.cut_pos = {UP: None, DOWN: None}
            self._resumed.notify_all()

    @property
    def open_connections(self):
        with self._lock:
            return sum(1 for c in self._conns if not c.closed.is_set())

    def wait_connections(self, n, timeout_s=5.0):
        """Wait until `connections` (accepted, ever) reaches n; returns True if it did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.connections >= n:
                return True
            time.sleep(0.01)
        return self.connections >= n

    def close(self):
        """Stop accepting, cut everything and join the threads."""
        with self._lock:
            self._closing = True
            self._cut_all_locked()
            self._resumed.notify_all()
            conns = list(self._conns)
        try:
            self._lsock.close()
        except OSError:
            pass
        self._acceptor.join(2)
        for c in conns:
            for t in c.threads:
                t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _cut_all_locked(self):
        for c in self._conns:
            if not c.closed.is_set():
                self.cuts += 1
                c.close(self.reset)

    def _accept_loop(self):
        while not self._closing:
            try:
                r, _, _ = select.select([self._lsock], [], [], _POLL_S * 5)
                if not r:
                    continue
                client, _ = self._lsock.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._refuse or self._closing
                self.connections += 1
            if refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(None)
            with self._lock:
                conn = _Conn(self, self.connections, client, upstream)
                self._conns = [c for c in self._conns if not c.closed.is_set()] + [conn]
            for d in (UP, DOWN):
                t = threading.Thread(
                    target=self._pump,
                    args=(conn, d),
                    daemon=True,
                    name="faultproxy-%d-%s" % (conn.num, d),
                )
                conn.threads.append(t)
                t.start()

    def _plan(self, conn, direction, data):
        """Under the lock: how many bytes of data to forward, and whether to cut after."""
        n = len(data)
        fwd, cut = n, False
        for key in (direction, ANY):
            b = self._budget[key]
            if b is not None and b <= fwd:
                fwd, cut = b, True
        framer = conn.framers[direction]
        base = framer.pos
        heads = framer.feed(data)
        self.packets[direction] += len(heads)
        r = self._random
        if r is not None and r[3] == "bytes":
            if r[4] <= fwd:
                fwd, cut = r[4], True
        elif r is not None:
            for start, ptype, total in heads:
                if ptype != 3 or conn.cut_pos[direction] is not None:
                    continue
                r[4] -= 1
                if r[4] <= 0:
                    conn.cut_pos[direction] = max(base, start + r[0].randint(1, total))
                    r[4] = r[0].randint(r[1], r[2])
        cp = conn.cut_pos[direction]
        if cp is not None and cp - base <= fwd:
            fwd, cut = cp - base, True
            conn.cut_pos[direction] = None
        # Account for what will go out now.
        for key in (direction, ANY):
            if self._budget[key] is not None:
                self._budget[key] -= fwd
                if self._budget[key] <= 0 and cut:
                    self._budget[key] = None
        if r is not None and r[3] == "bytes":
            r[4] -= fwd
            if cut and r[4] <= 0:
                r[4] = r[0].randint(r[1], r[2])
        return fwd, cut

    def _pump(self, conn, direction):
        src = conn.socks[direction]
        dst = conn.socks[DOWN if direction == UP else UP]
        while not conn.closed.is_set() and not self._closing:
            with self._lock:
                while self._stalled and not conn.closed.is_set() and not self._closing:
                    self._resumed.wait(_POLL_S * 5)
            try:
                r, _, _ = select.select([src], [], [], _POLL_S)
                if not r:
                    continue
                data = src.recv(_CHUNK)
            except (OSError, ValueError):
                break
            if not data:
                break
            with self._lock:
                while self._stalled and not conn.closed.is_set() and not self._closing:
                    self._resumed.wait(_POLL_S * 5)  # hold what was read until resume()
                if conn.closed.is_set():
                    break
                if self._blackhole:
                    self.dropped += len(data)
                    continue
                fwd, cut = self._plan(conn, direction, data)
                if direction == UP:
                    self.bytes_up += fwd
                else:
                    self.bytes_down += fwd
            try:
                if fwd:
                    dst.sendall(data[:fwd])
            except OSError:
                break
            if cut:
                with self._lock:
                    if not conn.closed.is_set():
                        self.cuts += 1
                    conn.close(self.reset)
                break
        # One side closed by its peer: close the other too (a proxy passes EOF on).
        conn.close()
