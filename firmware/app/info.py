# app.info: the `info` command's reply (layer: firmware). A module of its own, imported
# for one command and forgotten again: loading all of app.admin for it cost more heap
# than the reply itself, on top of a running node.
#
# RAM: the reply is the node's largest; it is written in one go, bytes from a bytes
# template, with only the text values JSON-quoted: no dict of twenty entries, no text
# copy to encode, and the keys are no interned names (a bytes constant is not interned).
import json

from app import VERSION
from app.commands import CommandError

_INFO = (
    b'{"ok":true,%s"version":%s,"board":%s,"device_id":%s,"mem_free":%d,"uptime_s":%d,'
    b'"interval_s":%d,"sleep":%s,"ip":%s,"rssi":%s,"reset_cause":%s,"seq":%d,"queued":%d,'
    b'"dropped":%d,"loop_errors":%d,"commands_dropped":%d,"clock_synced":%s,'
    b'"config_writes":%d,"mqtt":{"connected":%s,"reconnects":%d,"pending":%d}%s}'
)


def _q(v):
    """v (str, int, None, bool, dict...) as JSON, in bytes."""
    return json.dumps(v).encode()


def info(node, arg=None, cid=None):
    """The whole `info` reply as JSON bytes, {"ok": true} and the command id cid (None: no
    "id") included: version, board, ids, free memory (after a collection), uptime, link,
    counters and the client's main ones. `info mqtt`: all the client's stats (a reply of
    its own: together they would be the node's largest allocation, which fails first on a
    cut-up heap). Raises CommandError for any other argument."""
    c = node.client
    ident = b"" if cid is None else b'"id":%s,' % _q(cid)
    if arg == "mqtt":
        return b'{"ok":true,%s"mqtt":%s}' % (ident, _q(c.stats()))
    if arg is not None:
        raise CommandError("info takes nothing, or mqtt")
    net = node.hw.network
    system = node.hw.system
    err = b""
    if node.problems:
        err = b',"error":%s' % _q("; ".join(node.problems))
    return _INFO % (
        ident,
        _q(VERSION),
        _q(node.hw.name),
        _q(node.device_id),
        system.mem_free(),
        node.uptime_s(),
        node.interval_s,
        _q(node.cfg["sleep"]),
        _q(net.ip()),
        _q(net.rssi()),
        _q(system.reset_cause()),
        node.seq,
        len(node.ring),
        node.ring.dropped,
        node.loop_errors,
        node.cmds_dropped,
        b"true" if node.ntp_syncs > 0 else b"false",
        getattr(node, "cfg_writes", 0),
        b"true" if c.is_connected() else b"false",
        c.reconnects,
        c.pending(),
        err,
    )
