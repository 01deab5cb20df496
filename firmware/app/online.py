# app.online: connecting to the broker and announcing the node (layer: firmware). Runs
# once per connection, so the node imports it for that and forgets it again.
import json

from app.log import log
from hal import unload


def connect(node):
    """Connect (with the session kept in RTC memory in deep-sleep mode) and subscribe to
    the node's commands. Raises OSError or MQTTException."""
    b = node.cfg["broker"]
    if node._session_blob:
        from app import deep

        deep.session_restore(node.client, node._session_blob)
        node._session_blob = b""
    log("connecting to", b["host"], "port", b["port"] or "default", "as", node.device_id)
    node.client.connect(b["clean_session"])
    node.client.subscribe(node.cmd_filter, 1)
    node._connected_once = True


def announce(node):
    """Status online (retained), the config problems (or clearing an old report), and
    Home Assistant discovery."""
    log("connected; status online on", node.t_status.decode())
    node._publish(node.t_status, b"online", True, 1)
    if node.trial:
        _proven(node)
    if node.led is not None:  # Home Assistant's switch state, retained
        led = b"on" if node.led.value() else b"off"
        node._publish((node.base + "/led").encode(), led, True, 1)
    if node.problems:
        err = json.dumps({"error": "; ".join(node.problems)}).encode()
        node._publish(node.t_error, err, True, 1)
    elif not node._error_cleared:
        node._publish(node.t_error, b"", True, 1)  # clears a report from an earlier boot
    node._error_cleared = True
    if node.cfg["ha_discovery"]:
        from app import ha

        try:
            ha.announce(node)
        finally:
            unload("app.ha")


def _proven(node):
    """The configuration connected: keep it as config.last-good.json (only when it
    differs from that file: app.setup.boot compared them), and forget a rejected one."""
    import os

    from app import config as config_mod

    node.trial = 0
    good = config_mod.sibling(node.config_path, "last-good")
    rejected = config_mod.sibling(node.config_path, "rejected")
    try:
        config_mod.save(node.raw, good)
        log("config connected; kept as", good)
    except OSError as e:
        log("could not write", good + ":", e)
    finally:
        config_mod = None
        unload("app.config")
    try:
        os.remove(rejected)
    except OSError:
        pass  # there was none
