# Encode and decode throughput of a QoS 1 PUBLISH (16-byte topic, 32-byte payload), in
# packets/s. Runs unchanged on CPython and MicroPython:
#   python tools/bench_codec.py        micropython tools/bench_codec.py
import sys

sys.path.insert(0, (__file__.rpartition("/")[0] or ".") + "/../lib")

from mote import codec  # noqa: E402
from mote.compat import ticks_diff, ticks_ms  # noqa: E402

TOPIC = b"mote/abcd/sensor"  # 16 bytes
MSG = b"0123456789abcdef0123456789abcdef"  # 32 bytes
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000


def encode(n):
    buf = bytearray(64)
    enc = codec.encode_publish
    t0 = ticks_ms()
    for i in range(n):
        enc(buf, 0, TOPIC, MSG, 1, False, False, (i & 0x7FFF) + 1)
    return ticks_diff(ticks_ms(), t0)


def decode(n):
    buf = bytearray(64)
    end = codec.encode_publish(buf, 0, TOPIC, MSG, 1, False, False, 7)
    pkt = codec.Packet()
    dec = codec.decode
    t0 = ticks_ms()
    for _ in range(n):
        dec(buf, 0, end, pkt)
    return ticks_diff(ticks_ms(), t0)


def best(fn, n, rounds=3):
    ms = min(fn(n) for _ in range(rounds))
    return n * 1000 // max(ms, 1)


print(
    "%s: encode %d packets/s, decode %d packets/s (QoS 1 PUBLISH, 16 B topic, 32 B payload)"
    % (sys.implementation.name, best(encode, N), best(decode, N))
)
