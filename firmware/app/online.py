# app.online: connecting to the broker and announcing the node (layer: firmware). Runs
# once per connection, so the node imports it for that and forgets it again. It also
# writes config.json and its companion files (sibling, save): keeping a configuration
# that connected must not load the validator (app.config, the node's largest module)
# on top of a running node.
import json
import os

from app.log import log


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
    """Status online (retained), the config problems (or clearing an old report). Home
    Assistant discovery follows (Node._on_up: app.ha, once this module is gone)."""
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


def _proven(node):
    """The configuration connected: keep it as config.last-good.json (only when it
    differs from that file: app.setup.boot compared them), and forget a rejected one."""
    node.trial = 0
    good = sibling(node.config_path, "last-good")
    rejected = sibling(node.config_path, "rejected")
    try:
        save(node.raw, good)
        log("config connected; kept as", good)
    except OSError as e:
        log("could not write", good + ":", e)
    try:
        os.remove(rejected)
    except OSError:
        pass  # there was none


def sibling(path, tag):
    """config.json's companion file: tag "last-good" (the last configuration that
    connected) or "rejected" (one that did not, kept for a look)."""
    return (path[:-5] if path.endswith(".json") else path) + "." + tag + ".json"


def save(raw, path="config.json"):
    """Write raw back to path atomically (a temporary file, then rename). Raises OSError."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(raw))
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)  # FAT's rename does not replace an existing file; littlefs's does
        os.rename(tmp, path)
