# app.ha: Home Assistant MQTT discovery (layer: firmware). One retained config message
# per reading field and one for the LED switch, under <ha_prefix>/<component>/<node>/...,
# so the node shows up in Home Assistant with no configuration there. Payloads use Home
# Assistant's documented abbreviations and a "~" base topic to stay small: the client's
# packet buffer is fixed at construction. The node imports this module after each
# connect and forgets it again (see app.node).
#
# RAM: each payload is written in one go, bytes from a bytes template, with only the
# configured values (prefix, device id, board, version) JSON-quoted: no dict, no text
# copy to encode, and none of Home Assistant's keys becomes an interned name (a str or
# bytes constant longer than 10 characters is not interned; the words of a dict would be,
# for the node's life).
import json

# One line per field that becomes a sensor: field, name, unit, device class, and "d" for
# an entity in Home Assistant's "diagnostic" category. Fields not listed get no entity.
_SENSORS = (
    b"temperature_c Temperature \xc2\xb0C temperature -\n"
    b"humidity_pct Humidity % humidity -\n"
    b"pressure_hpa Pressure hPa atmospheric_pressure -\n"
    b"rssi Signal dBm signal_strength d\n"
    b"uptime_s Uptime s duration d"
)
# The JSON-quoted values (%s with quotes) come from json.dumps; the others are the node
# key (letters, digits, _), a field name and the table's words.
_SENSOR = (
    b'{"~":%s,"name":"%s","uniq_id":"%s_%s","stat_t":"~/telemetry",'
    b'"val_tpl":"{{ value_json.%s }}","unit_of_meas":"%s","dev_cla":"%s",'
    b'"stat_cla":"measurement","avty_t":"~/status",%s"dev":%s}'
)
_DIAGNOSTIC = b'"ent_cat":"diagnostic",'
# The switch's state is the retained <p>/<id>/led, set at each connect and change
# (app.online, app.commands): it survives Home Assistant's restarts, and a failed
# command's reply (no "led" key) cannot break a template.
_SWITCH = (
    b'{"~":%s,"name":"LED","uniq_id":"%s_led","cmd_t":"~/cmd/led","stat_t":"~/led",'
    b'"pl_on":"on","pl_off":"off","stat_on":"on","stat_off":"off",'
    b'"avty_t":"~/status","dev":%s}'
)
_DEVICE = b'{"ids":["%s"],"name":%s,"mdl":%s,"sw":%s,"mf":"mote"}'


def node_key(prefix, device_id):
    """The node's id in Home Assistant topics and unique ids (letters, digits, _ only)."""
    s = prefix + "_" + device_id
    return "".join(c if c.isalpha() or c.isdigit() else "_" for c in s)


def _q(s):
    """s as a JSON string, in bytes."""
    return json.dumps(s).encode()


def messages(ha_prefix, prefix, device_id, board, version, fields, has_led=True, out=None):
    """The discovery messages as a list of (topic bytes, payload bytes); publish each
    retained. fields: the reading's keys (only those in the table above become sensors).
    With out (a function of topic and payload) each message goes there as soon as it is
    made instead, and the list stays empty: only one payload exists at a time."""
    key = node_key(prefix, device_id).encode()
    hp = ha_prefix.encode()
    base = _q(prefix + "/" + device_id)
    dev = _DEVICE % (key, _q("mote " + device_id), _q(board), _q(version))
    made = []
    for f in fields:
        f = f.encode()
        for line in _SENSORS.split(b"\n"):
            w = line.split(b" ")
            if w[0] != f:
                continue
            diag = _DIAGNOSTIC if w[4] == b"d" else b""
            cfg = _SENSOR % (base, w[1], key, f, f, w[2], w[3], diag, dev)
            w = line = None  # heap: only the payload and its topic while it is sent
            _emit(made, out, b"%s/sensor/%s/%s/config" % (hp, key, f), cfg)
            cfg = None
            break
    if has_led:
        cfg = _SWITCH % (base, key, dev)
        _emit(made, out, b"%s/switch/%s/led/config" % (hp, key), cfg)
    return made


def _emit(made, out, topic, payload):
    if out is None:
        made.append((topic, payload))
    else:
        out(topic, payload)


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
