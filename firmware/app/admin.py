# app.admin: the rarely used commands, interval, config and reboot (layer: firmware).
# app.commands imports this module for one command and forgets it again.
import json

from app.commands import CommandError
from app.log import log
from hal import unload
from mote.compat import const, ticks_add, ticks_diff

# config.json is written at most once per _SAVE_GAP_MS (flash wear: a flood of `config`
# commands must not rewrite it thousands of times). A change inside the gap is applied in
# RAM at once and written when the gap ends (Node.step calls save_pending), or at a clean
# shutdown or reboot; a power loss before that loses it.
_SAVE_GAP_MS = const(10_000)


def run(node, name, arg):
    """Command name (one of the three) with its parsed argument; returns the reply dict
    without "ok". Raises CommandError (or ValueError) for a bad argument."""
    if name == "interval":
        return _interval(node, arg)
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


# (section, key) pairs whose values are never printed or echoed (app.config.redacted
# uses this too: the one list of secrets); section None: a top-level key.
SECRETS = (("wifi", "password"), ("broker", "password"), (None, "cmd_key"))


def redacted(cfg):
    """A copy of cfg (two levels deep) with every non-empty secret replaced by "***"."""
    out = {}
    for k in cfg:
        v = cfg[k]
        out[k] = dict(v) if type(v) is dict else v
    for section, key in SECRETS:
        sub = out if section is None else out.get(section)
        if type(sub) is dict and sub.get(key):
            sub[key] = "***"
    return out


def change_config(node, changes):
    """Apply {"key": value, ...} (only keys config.json's remote_config lists) and save
    it; returns {"changed", "reboot_required", "saved"}. A change to the values already
    set writes nothing; writes are at most one per _SAVE_GAP_MS (saved false: written
    when the gap ends). Raises ValueError (the reply's error) for a bad or forbidden
    change; nothing changes then."""
    from app import config as config_mod

    try:
        names = config_mod.change(node.cfg, node.raw, changes)
        live = config_mod.LIVE
    finally:
        config_mod = None
        unload("app.config")
    if not names:
        return {"changed": [], "reboot_required": False, "saved": True}
    now = node._clock()
    last = getattr(node, "_saved_at", None)
    if last is not None and ticks_diff(now, last) < _SAVE_GAP_MS:
        node._save_due = ticks_add(last, _SAVE_GAP_MS)
        saved = False
    else:
        save(node)
        saved = True
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
    log("config changed:", ", ".join(names), "(saved)" if saved else "(to be saved)")
    return {"changed": names, "reboot_required": reboot, "saved": saved}


def save(node):
    """Write node.raw to config.json now (atomically: app.online.save). Raises
    CommandError when it cannot; the change stays applied in RAM."""
    from app import online

    node._save_due = None
    node._saved_at = node._clock()
    try:
        online.save(node.raw, node.config_path)
        node.cfg_writes = getattr(node, "cfg_writes", 0) + 1
    except OSError as e:
        why = type(e).__name__ + ": " + " ".join(str(a) for a in e.args)
        raise CommandError("changed but not saved: " + why)
    finally:
        online = None
        unload("app.online")


def save_pending(node):
    """Node.step when the write gap of a deferred change has ended, and Node.shutdown."""
    if node._save_due is None:
        return
    try:
        save(node)
        log("config saved")
    except CommandError as e:
        log(e.args[0])


def dropped(node):
    """The client dropped a command larger than its receive buffer (broker.rx_size): say so
    on <p>/<id>/error (not retained). The client keeps no topic of it, so no reply/<name>."""
    s = node.client._s
    node._dropped = s.dropped
    why = "command dropped: %d bytes, more than broker.rx_size (%d)" % (
        s.drop_len,
        node.cfg["broker"]["rx_size"],
    )
    log(why)
    try:
        node._publish(node.t_error, json.dumps({"ok": False, "error": why}).encode(), False, 1)
    except OSError as e:
        log("error report failed:", e)


def rollback(node):
    """config.json never connected: keep it as config.rejected.json, put the last good one
    back in its place and reboot with it. app.setup.boot reports the rejected file at every
    boot (console and <p>/<id>/error) until a new configuration connects (app.online)."""
    import os

    from app import config as config_mod
    from app import online

    path = node.config_path
    good = online.sibling(path, "last-good")
    why = "%s: no connection after %d attempts in %d s" % (path, node.trial - 1, node._secs)
    node.trial = 0
    try:
        with open(good) as f:
            raw = json.loads(f.read())
        config_mod.validate(raw)
        rejected = online.sibling(path, "rejected")
        try:
            os.remove(rejected)
        except OSError:
            pass
        os.rename(path, rejected)
        online.save(raw, path)
    except (OSError, ValueError) as e:  # ConfigError is a ValueError
        log(why + "; cannot go back to", good + ":", e)
        return
    finally:
        config_mod = online = None
        unload("app.config")
        unload("app.online")
    log(why + ": going back to", good)
    node.request_reboot()
