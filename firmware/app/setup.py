# app.setup: what runs once per boot (layer: firmware): read and check config.json, lay the
# board's defaults over it, build the hardware, make the MQTT client, restore the state
# kept in RTC memory and start the watchdog. The node forgets this module (and app.config)
# once it has started, so none of it stays in the heap.
import json

from app import VERSION
from app.log import log
from hal import unload
from mote.compat import const

_RTC_MAGIC = b"MOTE1"
_DEEP_OUTBOX = const(1024)  # deep sleep: client outbox bytes (its session goes to RTC memory)


def boot(config_path):
    """(cfg, raw, problems, hw, trial), or None when no configuration can work (config.json
    and config.last-good.json both missing or invalid): that is logged with what to do.
    A config.json that fails validation is replaced by the last good one, reported in
    problems, as is a config.rejected.json (app.admin.rollback) while it exists.
    trial (Node.trial): 0 when config.json is the last good one; 1 when its broker or wifi
    settings differ from it (it goes back to it if config.json does not connect); -1 for
    any other difference, or no last good one (written at the first connect: a changed
    interval_s must not send the node back when the broker happens to be down). app.config is
    forgotten before the hardware is built, so its code is gone before the buffers are
    made."""
    import board as board_mod

    import hal
    from app import config as config_mod
    from app.online import sibling

    good_path = sibling(config_path, "last-good")
    try:
        try:
            good = config_mod.load(good_path)
        except config_mod.ConfigError as e:
            good = None
            if not e.args[0].endswith("edit it)"):  # a missing file: app.config.load
                log("config error:", e.args[0])
        try:
            cfg, raw, problems = config_mod.load(config_path)
            trial = -1  # written as the last good one at the first connect
            if good is not None:
                was = good[1]
                if was == raw:
                    trial = 0
                elif was.get("broker") != raw.get("broker") or was.get("wifi") != raw.get("wifi"):
                    trial = 1  # how it connects changed: it can go back to the last good one

        except config_mod.ConfigError as e:
            log("config error:", e.args[0])
            if good is None:
                log("fix", config_path, "and reset the board (nothing else runs until then)")
                return None
            cfg, raw, problems = good
            problems.insert(0, e.args[0] + " (using " + good_path + ")")
            log("using", good_path, "(the last configuration that connected)")
            trial = 0
        good = None
        rejected = sibling(config_path, "rejected")
        try:
            open(rejected).close()
            problems.append(rejected + ": did not connect; using the last good configuration")
        except OSError:
            pass  # none: the usual case
    finally:
        sibling = None
        unload("app.config")
        unload("app.online")
    board = board_mod.BOARD
    unload("board")  # the merged copy in hw.board is what stays
    board_mod = None
    config_mod.board_defaults(cfg, raw, board.get("defaults"), problems)
    config_mod = None
    return cfg, raw, problems, hal.build(board, cfg), trial


def make_client(cfg, client_id):
    """The real MQTT client for cfg["broker"] (not connected yet)."""
    from mote import MQTTClient

    return MQTTClient(client_id, **client_args(cfg))


def client_args(cfg):
    """MQTTClient's arguments but the client id, for cfg["broker"]: plain values, so that
    app.run can forget this module before mote is imported and the client's buffers are
    made. In deep-sleep mode the outbox is small enough for the session to fit RTC memory
    with the node's state."""
    b = cfg["broker"]
    params = {}
    if b["tls"] and b["ca"]:
        params["cafile"] = b["ca"]
    if b["tls"] and b["cert"]:  # mutual TLS (app.config checks both or neither)
        params["certfile"] = b["cert"]
        params["keyfile"] = b["key"]
    deep = cfg["sleep"] == "deep"
    return {
        "server": b["host"],
        "port": b["port"],
        "user": b["user"],
        "password": b["password"],
        "keepalive": b["keepalive_s"],
        "ssl": True if b["tls"] else None,
        "ssl_params": params,
        "reconnect": True,
        "max_inflight": 4 if deep else 8,
        "rx_size": b["rx_size"],
        "outbox_size": min(_DEEP_OUTBOX, b["outbox_size"]) if deep else b["outbox_size"],
        "timeout_ms": b["timeout_s"] * 1000,
        "backoff_max_ms": cfg["backoff_max_s"] * 1000,
    }


def start(node):
    """Node.start(): restore RTC state, start the watchdog, log the problems and what
    runs."""
    _rtc_restore(node)
    wdt_s = node.cfg["watchdog_s"]
    if wdt_s:
        node.hw.system.wdt_start(wdt_s * 1000)
    for p in node.problems:
        log("problem:", p)
    log(
        "mote",
        VERSION,
        "board",
        node.hw.name,
        "id",
        node.device_id,
        "interval",
        node.interval_s,
        "s",
        "deep sleep" if node.deep else "",
    )


def _rtc_restore(node):
    # Layout (Node._rtc_save): magic, u16 + JSON head, u16 + ring bytes, session blob.
    try:
        data = node.hw.system.rtc_read()
    except OSError as e:
        log("could not read RTC state:", e)
        return
    n = len(_RTC_MAGIC)
    if len(data) < n + 4 or data[:n] != _RTC_MAGIC:
        return  # power-on: RTC memory holds nothing of ours
    try:
        hl = (data[n] << 8) | data[n + 1]
        head = json.loads(data[n + 2 : n + 2 + hl])
        off = n + 2 + hl
        rl = (data[off] << 8) | data[off + 1]
        ring = data[off + 2 : off + 2 + rl]
        blob = data[off + 2 + rl :]
        node.seq = int(head.get("seq", 0))
        node.cmd_t = int(head.get("ct", 0))
        node._fresh_boot = False
        from app import commands

        commands.restore_keys(node.commands, head.get("ids", []))
        commands = None
        unload("app.commands")
        if node.deep and head.get("deep"):
            node._secs = int(head.get("up", 0))
            node.interval_s = int(head.get("iv", node.interval_s))
            node._ntp_secs = int(head.get("nt", -1))
            if ring:
                from app import deep  # stays loaded: deep-sleep mode runs app.deep.cycle

                deep.ring_load(node.ring, ring)
            node._session_blob = bytes(blob)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        log("RTC state unreadable, starting afresh:", e)
