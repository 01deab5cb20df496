# app.admin: the rarely used commands, interval, info, config and reboot (layer:
# firmware). app.commands imports this module for one command and forgets it again.
from app import VERSION
from app.commands import CommandError
from app.log import log
from hal import unload


def run(node, name, arg):
    """Command name (one of the four) with its parsed argument; returns the reply dict
    without "ok". Raises CommandError (or ValueError) for a bad argument."""
    if name == "interval":
        return _interval(node, arg)
    if name == "info":
        return info(node)
    if name == "reboot":
        node.request_reboot()
        return {"rebooting": True}
    if arg is None:
        return {"config": redacted(node.cfg)}
    if type(arg) is not dict:
        raise CommandError('config takes an object, e.g. {"interval_s": 30}')
    return change_config(node, arg)


def _interval(node, arg):
    if arg is None:
        return {"interval_s": node.interval_s}
    s = arg
    if type(arg) is str:
        try:
            s = int(arg.strip())
        except ValueError:
            pass
    if type(s) is not int:
        raise CommandError("interval must be an integer")
    if not 1 <= s <= 86400:
        raise CommandError("interval must be 1..86400 seconds")
    node.set_interval(s)
    return {"interval_s": s}


def info(node):
    """The `info` reply: version, board, ids, free memory (after a collection), uptime,
    link, counters and the client's stats."""
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
        "mqtt": node.client.stats(),
    }
    if node.problems:
        out["error"] = "; ".join(node.problems)
    return out


# (section, key) pairs whose values are never printed or echoed (app.config.redacted
# uses this too: the one list of secrets).
SECRETS = (("wifi", "password"), ("broker", "password"))


def redacted(cfg):
    """A copy of cfg (two levels deep) with every non-empty secret replaced by "***"."""
    out = {}
    for k in cfg:
        v = cfg[k]
        out[k] = dict(v) if type(v) is dict else v
    for section, key in SECRETS:
        sub = out.get(section)
        if type(sub) is dict and sub.get(key):
            sub[key] = "***"
    return out


def change_config(node, changes):
    """Apply and save {"key": value, ...}; returns {"changed", "reboot_required"}.
    Raises ValueError (the reply's error) for a bad change; nothing changes then."""
    from app import config as config_mod

    try:
        names = config_mod.change(node.cfg, node.raw, changes)
        try:
            config_mod.save(node.raw, node.config_path)
        except OSError as e:
            why = type(e).__name__ + ": " + " ".join(str(a) for a in e.args)
            raise CommandError("changed but not saved: " + why)
        live = config_mod.LIVE
    finally:
        config_mod = None
        unload("app.config")
    reboot = False
    for name in names:
        if name == "interval_s":
            node.set_interval(node.cfg["interval_s"])
        elif name == "ha_discovery" and node.cfg["ha_discovery"] and node._online:
            from app import ha

            try:
                ha.announce(node)
            finally:
                unload("app.ha")
        elif name not in live:
            reboot = True
    log("config changed:", ", ".join(names), "(saved)")
    return {"changed": names, "reboot_required": reboot}
