# A scripted fake MQTT 3.1.1 broker for the bad-input tests (CPython only): accepts a client
# on a free loopback port, reads its CONNECT, then plays a script of actions.
# Packet encoding and parsing here are written from the spec tables, independent of lib/mote.
import queue
import select
import socket
import struct
import threading
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = range(8, 15)
NAMES = {
    0: "RESERVED0", 1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
    6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
    11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "RESERVED15",
}  # fmt: skip


# -- encoding (MQTT 3.1.1 section 2.2 and chapter 3) -----------------------------------------


def vbi(n):
    """Remaining-length bytes for n (section 2.2.3); n may exceed the spec for bad tests."""
    out = bytearray()
    while True:
        d, n = n & 0x7F, n >> 7
        out.append(d | 0x80 if n else d)
        if not n:
            return bytes(out)


def packet(ptype, flags=0, body=b""):
    """A packet: fixed header (type, flags, remaining length) + body."""
    return bytes([ptype << 4 | flags]) + vbi(len(body)) + bytes(body)


def _str(s):
    s = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(s)) + s


def connack(code=0, session_present=False):
    return packet(CONNACK, 0, bytes([1 if session_present else 0, code]))


def publish(topic, payload=b"", qos=0, pid=1, retain=False, dup=False):
    flags = (8 if dup else 0) | qos << 1 | (1 if retain else 0)
    body = _str(topic) + (struct.pack("!H", pid) if qos else b"")
    payload = payload.encode() if isinstance(payload, str) else bytes(payload)
    return packet(PUBLISH, flags, body + payload)


def puback(pid):
    return packet(PUBACK, 0, struct.pack("!H", pid))


def pubrec(pid):
    return packet(PUBREC, 0, struct.pack("!H", pid))


def pubrel(pid):
    return packet(PUBREL, 2, struct.pack("!H", pid))  # MQTT-3.6.1-1: flags 0010


def pubcomp(pid):
    return packet(PUBCOMP, 0, struct.pack("!H", pid))


def suback(pid, *codes):
    return packet(SUBACK, 0, struct.pack("!H", pid) + bytes(codes or (0,)))


def unsuback(pid):
    return packet(UNSUBACK, 0, struct.pack("!H", pid))


def pingresp():
    return packet(PINGRESP)


# -- the bad inputs the client tests need ----------------------------------------------------

GARBAGE = bytes(range(0xFF, 0x7F, -3)) * 4  # no valid packet starts with 0xFF
FIVE_BYTE_LENGTH = b"\x30\xff\xff\xff\xff\x01"  # MQTT-2.2.3: at most four length bytes
UNKNOWN_TYPE_0 = b"\x00\x00"
UNKNOWN_TYPE_15 = b"\xf0\x00"
CONNACK_TOO_LONG = b"\x20\x03\x00\x00\x00"
CONNACK_TOO_SHORT = b"\x20\x01\x00"
UNEXPECTED_PUBREL = pubrel(0x1234)
UNEXPECTED_PUBACK = puback(0x1234)


def oversize_publish(size, topic=b"big"):
    """A QoS 0 PUBLISH of `size` bytes in all, or size + 1 where no packet is that long
    (130, 16387: the length field grows by a byte there); size >= 5 + len(topic)."""
    for total in (size, size + 1):
        for vbi_len in (1, 2, 3, 4):
            body = total - 1 - vbi_len
            if len(vbi(body)) == vbi_len:
                return publish(topic, b"x" * (body - len(_str(topic))))
    raise ValueError("size", size)


def truncated(pkt, keep=None):
    """pkt cut short: the first `keep` bytes (default: all but the last)."""
    return pkt[: len(pkt) - 1 if keep is None else keep]


# -- parsing what the client sends -----------------------------------------------------------


class Packet:
    """One packet from the client: type, flags, body (bytes), raw (whole packet).
    CONNECT also gets client_id, keepalive, clean_session, will (topic, msg, qos, retain or
    None), username, password; PUBLISH gets topic, payload, qos, pid, dup, retain; acks get
    pid; SUBSCRIBE gets pid and topics [(filter, qos)]; UNSUBSCRIBE pid and topics."""

    def __init__(self, first, body, raw):
        self.type = first >> 4
        self.flags = first & 15
        self.body = bytes(body)
        self.raw = bytes(raw)
        self.name = NAMES[self.type]
        self.error = None  # set when the body does not parse
        try:
            self._parse()
        except (IndexError, struct.error, UnicodeDecodeError, ValueError) as e:
            self.error = repr(e)

    def _u16(self, off):
        if off + 2 > len(self.body):
            raise ValueError("short body")
        return struct.unpack_from("!H", self.body, off)[0]

    def _bin(self, off):
        n = self._u16(off)
        if off + 2 + n > len(self.body):
            raise ValueError("short string")
        return self.body[off + 2 : off + 2 + n], off + 2 + n

    def _parse(self):
        t, b = self.type, self.body
        if t == CONNECT:
            proto, off = self._bin(0)
            self.protocol = proto.decode()
            self.level = b[off]
            cf = b[off + 1]
            self.keepalive = self._u16(off + 2)
            self.clean_session = bool(cf & 2)
            cid, off = self._bin(off + 4)
            self.client_id = cid.decode()
            self.will = self.username = self.password = None
            if cf & 4:
                wt, off = self._bin(off)
                wm, off = self._bin(off)
                self.will = (wt.decode(), wm, (cf >> 3) & 3, bool(cf & 32))
            if cf & 128:
                u, off = self._bin(off)
                self.username = u.decode()
            if cf & 64:
                self.password, off = self._bin(off)
        elif t == PUBLISH:
            topic, off = self._bin(0)
            self.topic = topic.decode()
            self.qos = (self.flags >> 1) & 3
            self.dup = bool(self.flags & 8)
            self.retain = bool(self.flags & 1)
            self.pid = 0
            if self.qos:
                self.pid = self._u16(off)
                off += 2
            self.payload = b[off:]
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
            self.pid = self._u16(0)
        elif t in (SUBSCRIBE, UNSUBSCRIBE):
            self.pid = self._u16(0)
            self.topics, off = [], 2
            while off < len(b):
                f, off = self._bin(off)
                if t == SUBSCRIBE:
                    self.topics.append((f.decode(), b[off]))
                    off += 1
                else:
                    self.topics.append(f.decode())

    def __repr__(self):
        err = " ERR " + self.error if self.error else ""
        return "<%s flags=%d len=%d%s>" % (self.name, self.flags, len(self.body), err)


class PacketReader:
    """Splits a byte stream into Packets; feed() returns the complete ones."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 2:
            n, mult, i = 0, 1, 1
            while True:
                if i >= len(self.buf):
                    return out
                d = self.buf[i]
                n += (d & 0x7F) * mult
                mult <<= 7
                i += 1
                if not d & 0x80:
                    break
                if i == 5:
                    raise ValueError("remaining length over 4 bytes")
            if len(self.buf) < i + n:
                return out
            raw = bytes(self.buf[: i + n])
            del self.buf[: i + n]
            out.append(Packet(raw[0], raw[i:], raw))
        return out


# -- script actions --------------------------------------------------------------------------
# Each action is a callable act(session); helpers below build them.


def send(data):
    """Send raw bytes."""
    return lambda s: s.send(data)


def expect(ptype, timeout_s=5.0):
    """Wait for the next packet from the client; record an error unless it is ptype."""
    return lambda s: s.expect(ptype, timeout_s)


def expect_closed(timeout_s=5.0):
    """Wait until the client closes the connection (error if it does not)."""
    return lambda s: s.expect_closed(timeout_s)


def sleep(seconds):
    return lambda s: time.sleep(seconds)


def close():
    """Close the connection."""
    return lambda s: s.close()


def reply_pings(on=True):
    """From now on answer every PINGREQ with PINGRESP (default: never answer)."""

    def act(s):
        s.auto_ping = on

    return act


def refuse_subs(on=True):
    """From now on answer every SUBSCRIBE with 0x80 (failure) for each filter (with
    ack_all; put it before the CONNACK so that no SUBSCRIBE can come first)."""

    def act(s):
        s.refuse_subs = on

    return act


def ack_all(on=True):
    """From now on acknowledge the client: PUBACK/PUBREC/PUBCOMP, SUBACK, UNSUBACK, PINGRESP."""

    def act(s):
        s.auto_ping = s.auto_ack = on

    return act


class Session:
    """One accepted connection while its script runs (what actions act on)."""

    def __init__(self, fake, sock, num):
        self.fake = fake
        self.sock = sock
        self.num = num
        self.received = []  # every Packet from this client, CONNECT included
        self.connect = None
        self.auto_ping = fake.auto_ping
        self.auto_ack = fake.auto_ack
        self.refuse_subs = False
        self.peer_closed = threading.Event()
        self._q = queue.Queue()
        self._reader = PacketReader()
        self._closed = False

    def send(self, data):
        if self._closed:
            return
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.fake.errors.append("conn %d: send failed: %r" % (self.num, e))

    def close(self):
        if not self._closed:
            self._closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    def expect(self, ptype, timeout_s):
        try:
            p = self._q.get(timeout=timeout_s)
        except queue.Empty:
            self.fake.errors.append(
                "conn %d: no %s within %.1f s" % (self.num, NAMES[ptype], timeout_s)
            )
            return None
        if p is None:
            self.fake.errors.append("conn %d: closed, expected %s" % (self.num, NAMES[ptype]))
        elif p.type != ptype:
            self.fake.errors.append("conn %d: got %r, expected %s" % (self.num, p, NAMES[ptype]))
        return p

    def expect_closed(self, timeout_s):
        if not self.peer_closed.wait(timeout_s):
            self.fake.errors.append("conn %d: client did not close" % self.num)

    def _read_some(self, timeout_s):
        """Read what is there within timeout_s; False once the connection is gone."""
        if self._closed:
            return False
        try:
            r, _, _ = select.select([self.sock], [], [], timeout_s)
            if not r:
                return True
            data = self.sock.recv(65536)
        except (OSError, ValueError):
            data = b""
        if not data:
            self.peer_closed.set()
            self._q.put(None)
            return False
        try:
            pkts = self._reader.feed(data)
        except ValueError as e:
            self.fake.errors.append("conn %d: bad bytes from client: %s" % (self.num, e))
            self.close()
            return False
        for p in pkts:
            self.received.append(p)
            self.fake.received.append(p)
            if p.type == CONNECT and self.connect is None:
                self.connect = p
            self._auto(p)
            self._q.put(p)
        return True

    def _auto(self, p):
        if self.auto_ping and p.type == PINGREQ:
            self.send(pingresp())
        if not self.auto_ack:
            return
        if p.type == PUBLISH and p.qos == 1:
            self.send(puback(p.pid))
        elif p.type == PUBLISH and p.qos == 2:
            self.send(pubrec(p.pid))
        elif p.type == PUBREL:
            self.send(pubcomp(p.pid))
        elif p.type == PUBREC:  # the client received our QoS 2 PUBLISH: release it
            self.send(pubrel(p.pid))
        elif p.type == SUBSCRIBE:
            self.send(
                suback(p.pid, *[0x80 if self.refuse_subs else min(q, 2) for _, q in p.topics])
            )
        elif p.type == UNSUBSCRIBE:
            self.send(unsuback(p.pid))


class FakeBroker:
    """Accepts clients on 127.0.0.1:port. For each, reads the CONNECT (with
    read_connect=True) then runs the script: a list of actions, or a list of such lists,
    one per successive connection (the last one repeats). After the script it keeps
    reading and recording until the client closes or hold_s passes, then closes.

    received: every Packet from every client; sessions: one Session per connection;
    errors: script mismatches (assert not fb.errors); connections: accepted count."""

    def __init__(
        self,
        script=(),
        read_connect=True,
        hold_s=10.0,
        auto_ping=False,
        auto_ack=False,
        max_connections=16,
    ):
        script = list(script)
        self.scripts = script if script and isinstance(script[0], (list, tuple)) else [script]
        self.read_connect = read_connect
        self.hold_s = hold_s
        self.auto_ping = auto_ping
        self.auto_ack = auto_ack
        self.max_connections = max_connections
        self.received = []
        self.sessions = []
        self.errors = []
        self.connections = 0
        self.host = "127.0.0.1"
        self._stop = threading.Event()
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((self.host, 0))
        self._lsock.listen(4)
        self.port = self._lsock.getsockname()[1]
        self._threads = []
        self._done = []  # one Event per session: its script and hold finished
        t = threading.Thread(target=self._accept_loop, daemon=True, name="fakebroker-accept")
        t.start()
        self._acceptor = t

    @property
    def connect(self):
        """The first connection's CONNECT packet (None until it arrived)."""
        return self.sessions[0].connect if self.sessions else None

    def packets(self, ptype):
        """Received packets of one type, in order."""
        return [p for p in self.received if p.type == ptype]

    def wait_connections(self, n, timeout_s=5.0):
        deadline = time.monotonic() + timeout_s
        while self.connections < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.connections >= n

    def wait(self, timeout_s=10.0):
        """Wait until every accepted session has finished; True if they all did."""
        deadline = time.monotonic() + timeout_s
        for ev in list(self._done):
            if not ev.wait(max(0, deadline - time.monotonic())):
                return False
        return True

    def wait_for(self, ptype, count=1, timeout_s=5.0):
        """Wait until `count` packets of ptype were received; returns them (maybe fewer)."""
        deadline = time.monotonic() + timeout_s
        while len(self.packets(ptype)) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.packets(ptype)

    def close(self):
        self._stop.set()
        try:
            self._lsock.close()
        except OSError:
            pass
        for s in list(self.sessions):
            s.close()
        self._acceptor.join(2)
        for t in self._threads:
            t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept_loop(self):
        while not self._stop.is_set() and self.connections < self.max_connections:
            try:
                r, _, _ = select.select([self._lsock], [], [], 0.05)
                if not r:
                    continue
                sock, _ = self._lsock.accept()
            except (OSError, ValueError):
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sess = Session(self, sock, self.connections)
            script = self.scripts[min(self.connections, len(self.scripts) - 1)]
            self.connections += 1
            self.sessions.append(sess)
            done = threading.Event()
            self._done.append(done)
            t = threading.Thread(
                target=self._serve,
                args=(sess, script, done),
                daemon=True,
                name="fakebroker-%d" % sess.num,
            )
            self._threads.append(t)
            t.start()

    def _serve(self, sess, script, done):
        stop_reading = threading.Event()
        reader = threading.Thread(target=self._read_loop, args=(sess, stop_reading), daemon=True)
        reader.start()
        try:
            if self.read_connect:
                p = sess.expect(CONNECT, 5.0)
                if p is not None and p.type == CONNECT and p.error:
                    self.errors.append("conn %d: bad CONNECT: %s" % (sess.num, p.error))
            for act in script:
                if self._stop.is_set():
                    break
                act(sess)
            deadline = time.monotonic() + self.hold_s
            while (
                not self._stop.is_set()
                and not sess.peer_closed.is_set()
                and time.monotonic() < deadline
                and not sess._closed
            ):
                time.sleep(0.01)
        finally:
            sess.close()
            stop_reading.set()
            reader.join(2)
            done.set()

    def _read_loop(self, sess, stop):
        while not stop.is_set() and not self._stop.is_set():
            if not sess._read_some(0.02):
                return


def refusing(code):
    """Script: answer CONNECT with a refusing CONNACK (code 1..5), then close."""
    return [send(connack(code)), sleep(0.2), close()]


def silent_pings(timeout_s=10.0):
    """Script: accept, then never answer PINGREQ; wait for the client to give up."""
    return [send(connack()), expect_closed(timeout_s)]
