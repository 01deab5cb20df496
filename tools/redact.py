"""Secrets masking for everything the tools print (mote-cli, run_host.py, deploy.py).

A value is secret when its key, or the last dotted part of it ("broker.password"), is
`password`, `cmd_key`, or ends in `password`, `key` or `secret` (case-insensitive). Secret
values are shown as "***" at any depth of a JSON payload, inside JSON that a string value
holds (a signed command's "body"), and, for text that is not JSON, wherever a
`"key": "value"` or `"key": value` pair can be recognised.
"""

import json
import re

MASK = "***"
_SUFFIXES = ("password", "passwd", "key", "secret", "token", "psk")

# "some_key": "value" (escapes allowed) or "some_key": 123 / true / null, in text that is
# not valid JSON (a half-typed argument, a truncated payload).
_PAIR = re.compile(
    r'"((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.)*"|[-+0-9.eE]+|true|false|null)',
)


def is_secret(key):
    """True if a value under this key must not be shown: the key, or its last dotted part
    ("broker.password"), ends in password, passwd, key, secret, token or psk."""
    if not isinstance(key, str):
        return False
    last = key.rsplit(".", 1)[-1].strip().lower()
    return last.endswith(_SUFFIXES)


def mask(value):
    """A copy of a JSON value (dicts, lists, scalars) with every secret value replaced by
    "***". A string that holds a JSON object or array is masked inside and re-encoded."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if is_secret(k) and v not in (None, ""):
                out[k] = MASK
            else:
                out[k] = mask(v)
        return out
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            inner = json.loads(value)
        except ValueError:
            return mask_text(value)
        if isinstance(inner, (dict, list)):
            return json.dumps(mask(inner), separators=(",", ":"))
    return value


def mask_text(text):
    """Text with the value of every recognisable "secret-key": value pair masked; for
    payloads and console lines that are not (whole) JSON."""

    def repl(m):
        if not is_secret(m.group(1)) or m.group(3) in ('""', "null"):
            return m.group(0)
        return '"%s"%s"%s"' % (m.group(1), m.group(2), MASK)

    return _PAIR.sub(repl, text)


def mask_payload(payload):
    """A printable, masked form of an MQTT payload (bytes or str): JSON with a secret in
    it is parsed, masked and re-encoded in its key order; JSON without one comes back as
    it was; anything else is masked as text."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        text = bytes(payload).decode("utf-8", "replace")
    else:
        text = payload
    try:
        value = json.loads(text)
    except ValueError:
        return mask_text(text)
    if isinstance(value, (dict, list)):
        masked = mask(value)
        if masked != value:
            return json.dumps(masked)
    return text
