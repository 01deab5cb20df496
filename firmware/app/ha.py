# app.ha: Home Assistant MQTT discovery (layer: firmware). One retained config message
# per reading field and one for the LED switch, under <ha_prefix>/<component>/<node>/...,
# so the node shows up in Home Assistant with no configuration there. Payloads use Home
# Assistant's documented abbreviations and a "~" base topic to stay small: the client's
# packet buffer is fixed at construction. The node imports this module after each
# connect and forgets it again (see app.node).
import json

# field -> (name, unit, device_class, diagnostic). Fields not listed get no entity.
FIELDS = {
    "temperature_c": ("Temperature", "°C", "temperature", False),
    "humidity_pct": ("Humidity", "%", "humidity", False),
    "pressure_hpa": ("Pressure", "hPa", "atmospheric_pressure", False),
    "rssi": ("Signal", "dBm", "signal_strength", True),
    "uptime_s": ("Uptime", "s", "duration", True),
}


def node_key(prefix, device_id):
    """The node's id in Home Assistant topics and unique ids (letters, digits, _ only)."""
    s = prefix + "_" + device_id
    return "".join(c if c.isalpha() or c.isdigit() else "_" for c in s)


def _device(key, device_id, board, version):
    return {"ids": [key], "name": "mote " + device_id, "mdl": board, "sw": version, "mf": "mote"}


def messages(ha_prefix, prefix, device_id, board, version, fields, has_led=True, out=None):
    """The discovery messages as a list of (topic bytes, payload bytes); publish each
    retained. fields: the reading's keys (only those in FIELDS become sensors). With out (a
    function of topic and payload) each message goes there as soon as it is made instead,
    and the list stays empty: only one payload exists at a time."""
    key = node_key(prefix, device_id)
    base = prefix + "/" + device_id
    dev = _device(key, device_id, board, version)
    made = []
    for f in fields:
        meta = FIELDS.get(f)
        if meta is None:
            continue
        cfg = {
            "~": base,
            "name": meta[0],
            "uniq_id": key + "_" + f,
            "stat_t": "~/telemetry",
            "val_tpl": "{{ value_json." + f + " }}",
            "unit_of_meas": meta[1],
            "dev_cla": meta[2],
            "stat_cla": "measurement",
            "avty_t": "~/status",
            "dev": dev,
        }
        if meta[3]:
            cfg["ent_cat"] = "diagnostic"
        cfg = json.dumps(cfg)  # the dict, then the text go as soon as each is copied (heap)
        cfg = cfg.encode()
        _emit(made, out, ha_prefix + "/sensor/" + key + "/" + f + "/config", cfg)
    if has_led:
        cfg = {
            "~": base,
            "name": "LED",
            "uniq_id": key + "_led",
            "cmd_t": "~/cmd/led",
            # Retained, set at each connect and change (app.online, app.commands): the
            # state survives Home Assistant's restarts, and a failed command's reply
            # (no "led" key) cannot break a template.
            "stat_t": "~/led",
            "pl_on": "on",
            "pl_off": "off",
            "stat_on": "on",
            "stat_off": "off",
            "avty_t": "~/status",
            "dev": dev,
        }
        cfg = json.dumps(cfg)
        cfg = cfg.encode()
        _emit(made, out, ha_prefix + "/switch/" + key + "/led/config", cfg)
    return made


def _emit(made, out, topic, payload):
    if out is None:
        made.append((topic.encode(), payload))
    else:
        out(topic.encode(), payload)


def announce(node):
    """Publish node's discovery messages, retained, at QoS 1, one at a time. The reading's
    fields come from the first reading (one is taken now if there was none yet)."""
    from app import VERSION, telemetry

    if node._fields is None:
        r = telemetry.sample(node.hw.sensors, 0, 0, node._rssi(), node._sensor_error)
        node._fields = list(r)
    cfg = node.cfg

    def publish(topic, payload):
        node._publish(topic, payload, True, 1)

    messages(
        cfg["ha_prefix"],
        cfg["prefix"],
        node.device_id,
        node.hw.name,
        VERSION,
        node._fields,
        True,
        publish,
    )
