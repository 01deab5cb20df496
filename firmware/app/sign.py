# app.sign: signed commands (layer: firmware). With config.json's "cmd_key" a command's
# payload is {"body": "<envelope JSON>", "sig": "<64 hex>"}, sig = HMAC-SHA256(cmd_key,
# topic + "\n" + body), the envelope carrying "id" and "t" (ms since 1970, sender's clock).
# app.commands imports this module for a signed command and forgets it again.
#
# HMAC (RFC 2104) is built here on hashlib.sha256: MicroPython on the ESP32 has hashlib
# but no hmac module.
import json
from binascii import hexlify
from hashlib import sha256

from app.commands import CommandError, seen
from app.telemetry import wall_time_s
from mote.compat import const

_BLOCK = const(64)  # SHA-256's block size
_SKEW_S = const(300)  # with the clock set, t may differ from it by this much at most


def hmac_sha256(key, msg):
    """HMAC-SHA256 of msg (bytes) with key (bytes): the 32-byte digest."""
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    k = bytearray(_BLOCK)
    k[0 : len(key)] = key
    for i in range(_BLOCK):
        k[i] ^= 0x36
    h = sha256(k)
    h.update(msg)
    inner = h.digest()
    for i in range(_BLOCK):
        k[i] ^= 0x36 ^ 0x5C
    h = sha256(k)
    h.update(inner)
    return h.digest()


def sign(key, topic, body):
    """The "sig" for body (str) sent to topic (str) with key (str): 64 lowercase hex."""
    mac = hmac_sha256(key.encode(), topic.encode() + b"\n" + body.encode())
    return hexlify(mac).decode()


def same(a, b):
    """a == b for two str, in a time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= ord(a[i]) ^ ord(b[i])
    return d == 0


def _id(v):
    """The id of a command object, if it is one that a reply may echo, else None."""
    if type(v) is not dict:
        return None
    cid = v.get("id")
    if type(cid) is int or (type(cid) is str and len(cid) <= 64):
        return cid
    return None


def accept(cmds, name, payload, retained=False):
    """(id, arg) of a signed command to name, from its payload (bytes). Raises
    CommandError (args[1]: the id when it could be read) for an unsigned, wrongly signed
    or replayed command. A retained one, or a redelivery of an id cmds remembers, is
    returned without the freshness check (app.commands refuses or answers it as such)."""
    node = cmds.node
    try:
        v = json.loads(bytes(payload).decode())
    except ValueError:  # UnicodeError is one too
        raise CommandError("unsigned command")
    if type(v) is not dict or len(v) != 2 or "body" not in v or "sig" not in v:
        raise CommandError("unsigned command", _id(v))
    body = v["body"]
    sig = v["sig"]
    if type(body) is not str or type(sig) is not str:
        raise CommandError("unsigned command")
    try:
        env = json.loads(body)
    except ValueError:
        env = None
    cid = _id(env)
    topic = node.base + "/cmd/" + name
    if not same(sign(node.cfg["cmd_key"], topic, body), sig):
        raise CommandError("bad signature", cid)
    if type(env) is not dict:
        raise CommandError("body: expected a JSON object")
    t = env.get("t")
    if type(t) is not int or cid is None:
        raise CommandError('body: needs "id" and "t" (ms since 1970)', cid)
    for k in env:
        if k != "id" and k != "t" and k != "arg":
            raise CommandError("unknown field in command object: " + str(k)[:32], cid)
    arg = env.get("arg")
    if retained or seen(cmds, name, cid):
        return cid, arg
    if t <= node.cmd_t:
        raise CommandError("replayed or stale command", cid)
    now = wall_time_s()
    if now is not None and abs(t // 1000 - now) > _SKEW_S:
        raise CommandError("replayed or stale command", cid)
    node.cmd_t = t
    return cid, arg
