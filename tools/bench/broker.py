"""A private mosquitto for the benchmark, and a raw-socket flood publisher (CPython only).

The broker listens on a free loopback port (never 1883), with its own config file in the
run's temporary folder, and no persistence.
"""

import os
import re
import shutil
import socket
import subprocess
import time

HOST = "127.0.0.1"


def find_mosquitto():
    for p in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if p and os.path.exists(p):
            return p
    return None


def mosquitto_version(binary):
    try:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    m = re.search(r"mosquitto version (\S+)", out)
    return m.group(1) if m else "unknown"


def free_port():
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port != 1883:
            return port


class Broker:
    def __init__(self, workdir, binary=None, persistence=False):
        self.binary = binary or find_mosquitto()
        if not self.binary:
            raise RuntimeError("mosquitto not found (Debian/Ubuntu: apt-get install mosquitto)")
        self.workdir = workdir
        self.port = None
        self.proc = None
        self.version = mosquitto_version(self.binary)
        self.persistence = persistence  # sessions and queued messages survive a restart

    def start(self, timeout_s=10.0, port=None):
        """Start mosquitto on a free port, or on `port` (a restart on the same one)."""
        self.port = port or free_port()
        conf = os.path.join(self.workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(
                "# written by tools/bench for one benchmark run\n"
                f"listener {self.port} {HOST}\n"
                "allow_anonymous true\n"
                + (
                    f"persistence true\npersistence_location {self.workdir}/\n"
                    if self.persistence
                    else "persistence false\n"
                )
                + "log_dest stderr\n"
                "log_type error\n"
                "log_type warning\n"
            )
        self.log = open(os.path.join(self.workdir, "mosquitto.log"), "w")
        self.proc = subprocess.Popen(
            [self.binary, "-c", conf], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}, see {conf}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not start listening in time")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None


def _vbi(n):
    out = bytearray()
    while True:
        d = n & 0x7F
        n >>= 7
        out.append(d | 0x80 if n else d)
        if not n:
            return bytes(out)


def _connect_packet(client_id):
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    return b"\x10" + _vbi(len(body)) + body


def publish_packet(topic, payload):
    body = len(topic).to_bytes(2, "big") + topic + payload
    return b"\x30" + _vbi(len(body)) + body


def end_payload(size):
    """The flood's end marker: same length as the messages, starting with b"END"."""
    return (b"END" + b"." * size)[:size]


def flood(port, topic, segments, client_id="bench-flood", timeout_s=30.0):
    """Publish QoS 0 messages as fast as the socket takes them: segments = [(count, payload)].

    All packets are built first and sent with one sendall, so the publisher is never the
    bottleneck. Returns the number of messages sent."""
    blob = b"".join(publish_packet(topic, p) * n for n, p in segments)
    with socket.create_connection((HOST, port), timeout=timeout_s) as s:
        s.sendall(_connect_packet(client_id))
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            if not chunk:
                raise RuntimeError("broker closed the flood connection")
            ack += chunk
        if ack[0] != 0x20 or ack[3] != 0:
            raise RuntimeError(f"flood publisher refused: {ack.hex()}")
        s.sendall(blob)
        s.sendall(b"\xe0\x00")
    return sum(n for n, _ in segments)
