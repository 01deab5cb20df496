# Self-tests of the broker test infrastructure (CPython only): mosquitto and its listeners,
# the fault proxy, the fake broker, and MicroPython (plain and TLS) against the broker.
import socket
import ssl
import struct
import threading
import time

import fakebroker as fb
import paho.mqtt.client as mqtt
import pytest
from faultproxy import DOWN, UP
from mpclient import broker_params, run_micropython, spawn_micropython

HOST = "127.0.0.1"


def connect_packet(client_id, user=None, password=None, keepalive_s=30, clean=True):
    """A hand-written MQTT 3.1.1 CONNECT."""

    def s(v):
        v = v.encode() if isinstance(v, str) else v
        return struct.pack("!H", len(v)) + v

    flags = (2 if clean else 0) | (128 if user is not None else 0) | (64 if password else 0)
    body = s("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s) + s(client_id)
    if user is not None:
        body += s(user)
    if password:
        body += s(password)
    return fb.packet(fb.CONNECT, 0, body)


def recv_exactly(sock, n, timeout_s=3.0):
    sock.settimeout(timeout_s)
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def raw_connect(port, client_id="raw", **kw):
    """Open a TCP connection, send CONNECT; returns (sock, the 4 CONNACK bytes)."""
    sock = socket.create_connection((HOST, port), timeout=3)
    sock.sendall(connect_packet(client_id, **kw))
    return sock, recv_exactly(sock, 4)


def is_closed(sock, timeout_s=2.0):
    sock.settimeout(timeout_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


class Paho:
    """A paho-mqtt 3.1.1 client with its network loop in a thread and waitable results."""

    def __init__(self, client_id, clean_session=True, **tls):
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )
        if tls:
            self.c.tls_set(**tls)
        self.connected = threading.Event()
        self.reason = None
        self.messages = []
        self.got = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message

    def _on_connect(self, c, userdata, flags, reason, props):
        self.reason = reason
        self.connected.set()

    def _on_message(self, c, userdata, msg):
        self.messages.append((msg.topic, msg.payload, msg.qos))
        self.got.set()

    def connect(self, port, user=None, password=None):
        if user is not None:
            self.c.username_pw_set(user, password)
        self.c.connect(HOST, port, keepalive=10)
        self.c.loop_start()
        assert self.connected.wait(5), "no CONNACK"
        return self.reason

    def subscribe(self, topic, qos=1):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, qos)
        assert done.wait(5), "no SUBACK"

    def wait_messages(self, n, timeout_s=5.0):
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < n and time.monotonic() < deadline:
            self.got.wait(0.05)
            self.got.clear()
        return self.messages

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def round_trip(port, **tls):
    sub, pub = Paho("sub", **tls), Paho("pub", **tls)
    try:
        assert sub.connect(port) == 0
        sub.subscribe("infra/rt")
        assert pub.connect(port) == 0
        pub.c.publish("infra/rt", b"hello", qos=1).wait_for_publish(5)
        assert sub.wait_messages(1) == [("infra/rt", b"hello", 1)]
    finally:
        sub.close()
        pub.close()


# -- broker ----------------------------------------------------------------------------------


def test_paho_round_trip_through_plain_listener(broker):
    round_trip(broker.port)


def test_paho_round_trip_through_tls_with_the_ca(broker):
    round_trip(broker.tls_port, ca_certs=broker.certs.ca_cert)


def test_paho_round_trip_with_mutual_tls(broker):
    c = broker.certs
    round_trip(broker.mtls_port, ca_certs=c.ca_cert, certfile=c.client_cert, keyfile=c.client_key)


def _tls_handshake(port, cafile, hostname="localhost", cert=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if cert:
        ctx.load_cert_chain(*cert)
    with socket.create_connection((HOST, port), timeout=3) as s:
        with ctx.wrap_socket(s, server_hostname=hostname) as t:
            t.sendall(connect_packet("tls"))
            return recv_exactly(t, 4)


def test_tls_refuses_wrong_ca_and_wrong_host_name(broker):
    c = broker.certs
    assert _tls_handshake(broker.tls_port, c.ca_cert) == b"\x20\x02\x00\x00"
    assert _tls_handshake(broker.tls_port, c.ca_cert, hostname="127.0.0.1")[3] == 0
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        _tls_handshake(broker.tls_port, c.other_ca_cert)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _tls_handshake(broker.wronghost_port, c.ca_cert)


def test_mutual_tls_listener_refuses_a_client_without_certificate(broker):
    c = broker.certs
    assert _tls_handshake(broker.mtls_port, c.ca_cert, cert=(c.client_cert, c.client_key))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_handshake(broker.mtls_port, c.ca_cert)


def test_password_listener_accepts_right_and_refuses_wrong_password(broker):
    ok = Paho("auth-ok")
    try:
        assert ok.connect(broker.auth_port, broker.user, broker.password) == 0
    finally:
        ok.close()
    bad = Paho("auth-bad")
    try:
        reason = bad.connect(broker.auth_port, broker.user, "wrong")
        assert reason.is_failure and reason.getName() == "Not authorized"  # CONNACK 5
    finally:
        bad.close()
    # The raw CONNACK return codes: 5 for a wrong password and for anonymous.
    for kw in ({"user": broker.user, "password": "nope"}, {}):
        sock, ack = raw_connect(broker.auth_port, **kw)
        sock.close()
        assert ack == b"\x20\x02\x00\x05", (kw, ack)
    sock, ack = raw_connect(broker.auth_port, user=broker.user, password=broker.password)
    sock.close()
    assert ack == b"\x20\x02\x00\x00"


def test_fresh_broker_restarts_on_the_same_ports_and_keeps_sessions(fresh_broker):
    b = fresh_broker
    ports = b.ports()
    sub = Paho("persist", clean_session=False)
    assert sub.connect(b.port) == 0
    sub.subscribe("infra/persist", qos=1)
    sub.close()
    b.restart()
    assert b.ports() == ports and b.starts == 2
    pub = Paho("pub-persist")
    pub.connect(b.port)
    pub.c.publish("infra/persist", b"kept", qos=1).wait_for_publish(5)
    pub.close()
    sub = Paho("persist", clean_session=False)
    try:
        sub.connect(b.port)
        assert sub.wait_messages(1) == [("infra/persist", b"kept", 1)]
    finally:
        sub.close()
    assert b.log().count("mosquitto version") >= 4  # "starting" and "running", twice


# -- fault proxy -----------------------------------------------------------------------------


def test_proxy_forwards_and_counts(broker, proxy):
    round_trip(proxy.port)
    assert proxy.connections == 2 and proxy.bytes_up > 20 and proxy.bytes_down > 8
    assert proxy.cuts == 0


def test_proxy_cuts_after_exactly_n_bytes_downstream(proxy):
    proxy.cut_after(3, DOWN)
    sock, ack = raw_connect(proxy.port)
    assert ack == b"\x20\x02\x00" and is_closed(sock)
    assert proxy.bytes_down == 3 and proxy.cuts == 1
    sock.close()
    sock, ack = raw_connect(proxy.port)  # one-shot: the next connection is whole
    assert ack == b"\x20\x02\x00\x00"
    proxy.cut_now()
    assert is_closed(sock) and proxy.cuts == 2
    sock.close()


def test_proxy_cuts_after_n_bytes_upstream(proxy):
    pkt = connect_packet("cut-up")
    proxy.cut_after(len(pkt) - 1, UP)
    sock, ack = raw_connect(proxy.port, "cut-up")
    assert ack == b"" and proxy.bytes_up == len(pkt) - 1
    sock.close()


def test_proxy_blackholes_then_stalls_and_resumes(proxy):
    proxy.blackhole()
    sock = socket.create_connection((HOST, proxy.port), timeout=3)
    sock.sendall(connect_packet("bh"))
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sock.recv(4)
    assert proxy.dropped == len(connect_packet("bh")) and proxy.open_connections == 1
    sock.close()
    proxy.blackhole(False)
    proxy.stall()
    sock = socket.create_connection((HOST, proxy.port), timeout=3)
    sock.sendall(connect_packet("stall"))
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sock.recv(4)
    proxy.resume()
    assert recv_exactly(sock, 4) == b"\x20\x02\x00\x00"
    sock.close()


def test_proxy_random_cuts_are_seeded_bytes_and_messages(proxy):
    proxy.random_cuts(10, 20, seed=7)
    sock = socket.create_connection((HOST, proxy.port), timeout=3)
    sock.sendall(connect_packet("rnd") + fb.publish("t", b"x" * 40))
    assert is_closed(sock) and 10 <= proxy.bytes_up <= 20
    sock.close()
    first = proxy.bytes_up
    proxy.random_cuts(10, 20, seed=7)
    sock = socket.create_connection((HOST, proxy.port), timeout=3)
    sock.sendall(connect_packet("rnd") + fb.publish("t", b"x" * 40))
    assert is_closed(sock) and proxy.bytes_up == 2 * first  # same seed, same cut
    sock.close()
    proxy.random_cuts(3, 3, seed=1, unit="messages")
    before = proxy.bytes_up
    conn, pub = connect_packet("msgs"), fb.publish("t", b"y" * 10)
    sock = socket.create_connection((HOST, proxy.port), timeout=3)
    sock.sendall(conn)
    assert recv_exactly(sock, 4) == b"\x20\x02\x00\x00"
    for _ in range(3):
        sock.sendall(pub)
        time.sleep(0.02)
    assert is_closed(sock)
    sent = proxy.bytes_up - before
    assert len(conn) + 2 * len(pub) < sent <= len(conn) + 3 * len(pub)  # inside the third
    sock.close()


# -- fake broker -----------------------------------------------------------------------------


def test_fake_broker_plays_a_script_and_records_packets(fake_broker_factory):
    fake = fake_broker_factory(
        [
            fb.send(fb.connack()),
            fb.expect(fb.SUBSCRIBE),
            fb.send(fb.suback(1, 1)),
            fb.send(fb.publish("a/b", b"hi", qos=1, pid=9)),
            fb.expect(fb.PUBACK),
            fb.expect(fb.PINGREQ),
            fb.send(fb.UNEXPECTED_PUBREL),
            fb.close(),
        ]
    )
    sock, ack = raw_connect(fake.port, "fake", user="u", password=b"p", keepalive_s=7)
    assert ack == b"\x20\x02\x00\x00"
    sock.sendall(fb.packet(fb.SUBSCRIBE, 2, b"\x00\x01" + b"\x00\x03a/b\x01"))
    assert recv_exactly(sock, 5) == bytes.fromhex("90 03 0001 01")
    assert recv_exactly(sock, 11) == bytes.fromhex("32 09 0003 612f62 0009 6869")
    sock.sendall(fb.puback(9) + b"\xc0\x00")
    assert recv_exactly(sock, 4) == bytes.fromhex("62 02 1234")
    assert is_closed(sock)
    sock.close()
    assert fake.wait(3) and not fake.errors
    c = fake.connect
    assert (c.client_id, c.keepalive, c.clean_session, c.username, c.password, c.will) == (
        "fake",
        7,
        True,
        "u",
        b"p",
        None,
    )
    assert [p.name for p in fake.received] == ["CONNECT", "SUBSCRIBE", "PUBACK", "PINGREQ"]
    assert fake.received[1].topics == [("a/b", 1)] and fake.received[2].pid == 9


def test_fake_broker_records_script_mismatches_and_canned_bad_input(fake_broker_factory):
    assert fb.FIVE_BYTE_LENGTH[1:5] == b"\xff" * 4
    assert [len(fb.oversize_publish(n)) for n in (129, 130, 5000, 16388)] == [
        129,
        131,
        5000,
        16388,
    ]
    assert fb.truncated(fb.puback(1)) == b"\x40\x02\x00"
    fake = fake_broker_factory(
        [fb.refusing(4), [fb.send(fb.connack()), fb.expect(fb.PINGREQ, 0.3)]]
    )
    sock, ack = raw_connect(fake.port)
    assert ack == b"\x20\x02\x00\x04" and is_closed(sock)
    sock.close()
    sock, ack = raw_connect(fake.port)
    assert ack == b"\x20\x02\x00\x00"
    sock.sendall(fb.packet(fb.DISCONNECT))
    sock.close()
    assert fake.wait(3) and fake.connections == 2
    assert fake.errors == ["conn 1: got <DISCONNECT flags=0 len=0>, expected PINGREQ"]


# -- MicroPython -----------------------------------------------------------------------------

MP_RAW = """
import socket
s = socket.socket()
s.connect(socket.getaddrinfo(PARAMS["host"], PARAMS["port"])[0][-1])
s.write(PARAMS["connect"])
print("CONNACK", s.read(4).hex())
s.close()
"""

MP_TLS = """
import socket, ssl

def der(path):
    with open(path, "rb") as f:
        return f.read()

def connack(port, ca, host="localhost", client=None):
    s = socket.socket()
    s.connect(socket.getaddrinfo(PARAMS["host"], port)[0][-1])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED  # MicroPython's default is CERT_NONE
    ctx.load_verify_locations(cadata=der(ca))
    if client:
        ctx.load_cert_chain(client[0], client[1])
    try:
        t = ctx.wrap_socket(s, server_hostname=host)
        t.write(PARAMS["connect"])
        r = t.read(4).hex()
        t.close()
        return r
    except (OSError, ValueError) as e:
        s.close()
        return "%s %s" % (type(e).__name__, str(e.args[0]).strip())

print("TLS", connack(PARAMS["tls_port"], PARAMS["ca_der"]))
print("IP", connack(PARAMS["tls_port"], PARAMS["ca_der"], host="127.0.0.1"))
print("WRONGCA", connack(PARAMS["tls_port"], PARAMS["other_ca_der"]))
print("WRONGHOST", connack(PARAMS["wronghost_port"], PARAMS["ca_der"]))
cc = (PARAMS["client_cert_der"], PARAMS["client_key_der"])
print("MTLS", connack(PARAMS["mtls_port"], PARAMS["ca_der"], client=cc))
print("MTLSNOCERT", connack(PARAMS["mtls_port"], PARAMS["ca_der"]))
"""


def test_micropython_raw_connect_to_the_broker(broker, micropython_bin):
    rc, out = run_micropython(MP_RAW, params=broker_params(broker, connect=connect_packet("mp")))
    assert rc == 0 and "CONNACK 20020000" in out, out


def test_micropython_tls_verifies_ca_and_host_and_does_mutual_tls(broker, micropython_bin):
    rc, out = run_micropython(MP_TLS, params=broker_params(broker, connect=connect_packet("mp")))
    assert rc == 0, out
    got = dict(line.split(" ", 1) for line in out.splitlines())
    assert got["TLS"] == got["IP"] == got["MTLS"] == "20020000", out
    assert got["WRONGCA"].startswith("ValueError") and "trusted CA" in got["WRONGCA"], out
    assert got["WRONGHOST"].startswith("ValueError") and "CN" in got["WRONGHOST"], out
    assert got["MTLSNOCERT"].startswith("OSError"), out


def test_micropython_spawn_reads_lines_and_timeout_kills(micropython_bin):
    code = "import sys\nprint('ready', PARAMS['n'])\nprint(sys.stdin.readline().strip().upper())\n"
    with spawn_micropython(code, params={"n": 3}) as p:
        assert p.expect("ready", timeout=5) == "ready 3"
        p.write_line("hello")
        assert list(p.lines(timeout=5)) == ["HELLO"]
        assert p.wait(5) == 0
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="before"):
        run_micropython("print('before')\nimport time\ntime.sleep(30)", timeout=0.5)
    assert time.monotonic() - t0 < 5
    rc, out = run_micropython("raise ValueError('boom')")
    assert rc == 1 and "ValueError: boom" in out
