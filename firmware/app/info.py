# app.info: the `info` command's reply (layer: firmware). A module of its own, imported
# for one command and forgotten again: loading all of app.admin for it cost more heap
# than the reply itself, on top of a running node.
from app import VERSION
from app.commands import CommandError


def info(node, arg=None):
    """The `info` reply: version, board, ids, free memory (after a collection), uptime,
    link, counters and the client's main ones; `info mqtt`: all the client's stats (a
    reply of its own: together they would be the node's largest allocation, which fails
    first on a cut-up heap)."""
    c = node.client
    if arg == "mqtt":
        return {"mqtt": c.stats()}
    if arg is not None:
        raise CommandError("info takes nothing, or mqtt")
    net = node.hw.network
    out = {
        "version": VERSION,
        "board": node.hw.name,
        "device_id": node.device_id,
        "mem_free": node.hw.system.mem_free(),
        "uptime_s": node.uptime_s(),
        "interval_s": node.interval_s,
        "sleep": node.cfg["sleep"],
        "ip": net.ip(),
        "rssi": net.rssi(),
        "reset_cause": node.hw.system.reset_cause(),
        "seq": node.seq,
        "queued": len(node.ring),
        "dropped": node.ring.dropped,
        "loop_errors": node.loop_errors,
        "commands_dropped": node.cmds_dropped,
        "clock_synced": node.ntp_syncs > 0,
        "config_writes": getattr(node, "cfg_writes", 0),
        "mqtt": {
            "connected": c.is_connected(),
            "reconnects": c.reconnects,
            "pending": c.pending(),
        },
    }
    if node.problems:
        out["error"] = "; ".join(node.problems)
    return out
