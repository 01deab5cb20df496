# app.config: load and validate config.json once (layer: firmware). Defaults fill what is
# missing, a wrong type or range falls back to the default and is reported, unknown keys
# are reported and ignored. Fatal (ConfigError: the node does not connect with it): an
# unusable file, no broker host, a topic part (prefix, device_id, ha_prefix) that cannot
# work, and any wrong security setting (they fail closed, never fall back to a default).
# Secrets (the WiFi and broker passwords, cmd_key) are never printed: use redacted().
import json

from mote.compat import const

# Field kinds. A spec is (kind, default, lo, hi) for ints, (kind, default, choices) for
# strings with a fixed set of values, (kind, default) otherwise.
_INT = "int"
_STR = "str"
_OSTR = "str or null"
_BOOL = "bool"
_LIST = "list"
_ODICT = "object or null"
_DICT = "object"
_SECTION = "section"

WIFI = {
    "ssid": (_STR, ""),
    "password": (_STR, ""),
    "hostname": (_OSTR, None),
    "static": (_ODICT, None),
    "timeout_s": (_INT, 15, 1, 300),
}

BROKER = {
    "host": (_STR, ""),
    "port": (_INT, 0, 0, 65535),
    "user": (_OSTR, None),
    "password": (_OSTR, None),
    "tls": (_BOOL, False),
    "ca": (_OSTR, None),
    "cert": (_OSTR, None),  # client certificate and its key (mutual TLS): file paths
    "key": (_OSTR, None),
    "keepalive_s": (_INT, 60, 0, 65535),
    "clean_session": (_BOOL, False),
    "client_id": (_OSTR, None),
    "timeout_s": (_INT, 5, 1, 60),
    # The client's buffers, allocated once (mote's README, Client API): the largest command
    # received whole, and room for unacknowledged QoS 1 readings. The built-in defaults
    # (and offline_bytes') are a plain ESP32's, the smallest heap mote runs on (about
    # 112 KB); a board file's "defaults" raises them where there is more RAM.
    "rx_size": (_INT, 1024, 256, 65536),
    "outbox_size": (_INT, 1024, 512, 65536),
}

NTP = {
    "host": (_OSTR, "pool.ntp.org"),  # null or "": no time sync
    "timeout_s": (_INT, 2, 1, 10),
}

SCHEMA = {
    "device_id": (_OSTR, None),
    "prefix": (_STR, "mote"),
    "interval_s": (_INT, 60, 1, 86400),
    "qos": (_INT, 1, 0, 1),
    "sleep": (_STR, "none", ("none", "deep")),
    "awake_s": (_INT, 10, 1, 300),
    "ha_discovery": (_BOOL, True),
    "ha_prefix": (_STR, "homeassistant"),
    "offline_bytes": (_INT, 2048, 0, 65536),
    "watchdog_s": (_INT, 120, 0, 3600),
    "backoff_max_s": (_INT, 60, 1, 3600),
    "board": (_DICT, {}),
    "sensors": (_LIST, None),
    "sim": (_DICT, {}),
    "remote_config": (_LIST, None),  # None: the default, LIVE
    "cmd_key": (_OSTR, None),  # HMAC key of signed commands (app.sign); null: unsigned
    "wifi": (_SECTION, WIFI),
    "broker": (_SECTION, BROKER),
    "ntp": (_SECTION, NTP),
}

SECTIONS = {"wifi": WIFI, "broker": BROKER, "ntp": NTP}

# Settings the running node applies at once; any other change needs a reboot.
LIVE = ("interval_s", "qos", "ha_discovery", "awake_s", "backoff_max_s")
# LIVE is also what the `config` command may change unless config.json's "remote_config"
# says otherwise: never credentials or where the node connects.
# Never changed remotely, even when listed: who may change what, and the command key.
NEVER_REMOTE = ("remote_config", "cmd_key")
# Wrong here means the node does not connect (fails closed) instead of using a default:
# a default would silently drop TLS, verification or the login.
SECURE = (
    "broker.tls",
    "broker.port",
    "broker.ca",
    "broker.user",
    "broker.password",
    "broker.cert",
    "broker.key",
    "cmd_key",
)
_KEY_MIN = const(16)  # cmd_key: shorter keys are guessable

# The longest topic the node builds must fit the client's buffers: a SUBSCRIBE or QoS 0
# PUBLISH header goes in its control buffer (tx_size, the client's default as app.setup
# makes it), and rx_size is at least 256. _TOPIC_ROOM: the packet's own header bytes.
_TX_SIZE = const(256)
_TOPIC_ROOM = const(10)
_TOPIC_MAX = const(_TX_SIZE - _TOPIC_ROOM)
_CMD_NAME_MAX = const(32)  # app.commands answers names up to this long on reply/<name>
_DEFAULT_ID_LEN = const(16)  # a board's unique id in hex (6 to 8 bytes)
# The longest HA discovery topic: <ha_prefix>/sensor/<prefix>_<id>/pressure_hpa/config
_HA_EXTRA = const(29)  # len("/sensor/") + len("_") + len("/pressure_hpa/config")


# The longest a blocking call may take (ms). The main loop feeds the watchdog before each
# of them, so watchdog_s must outlast the longest, with a margin for the loop's own work.
_DNS_MS = const(15_000)  # a name lookup: lwIP asks each DNS server 4 times over about 7 s
_TLS_MS = const(5_000)  # a TLS handshake on an ESP32 (RSA-2048 takes 1-3 s)
_MQTT_WAITS = const(4)  # waits of broker.timeout_s in one connect: TCP, CONNACK and two SUBACKs
_WIFI_STEP_MS = const(1_000)  # joining WiFi feeds the watchdog at least this often
_WDT_MARGIN_MS = const(5_000)


class ConfigError(ValueError):
    """config.json cannot be used at all (unreadable, not a JSON object, no broker host)."""


def _kind_ok(kind, v):
    if kind == _INT:
        return type(v) is int
    if kind == _STR:
        return type(v) is str
    if kind == _OSTR:
        return v is None or type(v) is str
    if kind == _BOOL:
        return type(v) is bool
    if kind == _LIST:
        return v is None or type(v) is list
    if kind == _DICT:
        return type(v) is dict
    if kind == _ODICT:
        return v is None or type(v) is dict
    return False


def check_value(name, spec, v):
    """None if v fits spec, else a message naming the setting (never its value)."""
    kind = spec[0]
    if not _kind_ok(kind, v):
        return name + ": expected " + kind
    if kind == _INT and len(spec) == 4 and not spec[2] <= v <= spec[3]:
        return "%s: must be %d..%d" % (name, spec[2], spec[3])
    if kind == _STR and len(spec) == 3 and v not in spec[2]:
        return name + ": must be one of " + ", ".join(spec[2])
    return None


def _copy(v):
    if type(v) is dict:
        return {k: _copy(v[k]) for k in v}
    if type(v) is list:
        return [_copy(x) for x in v]
    return v


def _fill(schema, raw, prefix, problems):
    out = {}
    for key in schema:
        spec = schema[key]
        name = prefix + key
        if spec[0] == _SECTION:
            sub = raw.get(key, {})
            if type(sub) is not dict:
                problems.append(name + ": expected object")
                sub = {}
            out[key] = _fill(spec[1], sub, name + ".", problems)
            continue
        if key not in raw:
            out[key] = _copy(spec[1])
            continue
        msg = check_value(name, spec, raw[key])
        if msg and name in SECURE:
            raise ConfigError(msg + ": not connecting (security settings have no default)")
        if msg:
            problems.append(msg + " (using the default)")
            out[key] = _copy(spec[1])
        else:
            out[key] = _copy(raw[key])
    for key in raw:
        if key not in schema:
            problems.append(prefix + key + ": unknown setting (ignored)")
    return out


def _numeric(host):
    """True for an IPv4 or IPv6 address: connecting to it needs no DNS lookup."""
    if ":" in host:
        return True
    for c in host:
        if not ("0" <= c <= "9" or c == "."):
            return False
    return bool(host)


def blocking_ms(cfg):
    """(what, ms): the blocking call that may take longest with this configuration."""
    b = cfg["broker"]
    what = "an MQTT connect (broker.timeout_s x 4"
    ms = _MQTT_WAITS * 1000 * b["timeout_s"]
    if not _numeric(b["host"]):
        ms += _DNS_MS
        what += ", DNS"
    if b["tls"]:
        ms += _TLS_MS
        what += ", TLS"
    ntp = cfg["ntp"]
    if ntp["host"]:
        n = 1000 * ntp["timeout_s"] + (0 if _numeric(ntp["host"]) else _DNS_MS)
        if n > ms:
            return "an NTP query (ntp.timeout_s, DNS)", n
    if _WIFI_STEP_MS > ms:
        return "a WiFi step", _WIFI_STEP_MS
    return what + ")", ms


def watchdog_problem(cfg):
    """None when watchdog_s is 0 (off) or outlasts every blocking call, else the message
    (naming the shortest usable value, never the configured one) and that value."""
    wdt = cfg["watchdog_s"]
    what, ms = blocking_ms(cfg)
    need = (ms + _WDT_MARGIN_MS + 999) // 1000
    if not wdt or wdt >= need:
        return None, need
    msg = "watchdog_s: must be 0 (off) or at least %d s: %s can block %d s" % (
        need,
        what,
        (ms + 999) // 1000,
    )
    return msg, need


def _check_watchdog(cfg, problems):
    msg, need = watchdog_problem(cfg)
    if msg:
        problems.append(msg + " (using %d)" % need)
        cfg["watchdog_s"] = need


def topic_problem(cfg):
    """None when prefix, device_id and ha_prefix make valid topics that fit the client's
    buffers, else the message (naming the setting, never its value)."""
    lens = []
    for name in ("prefix", "device_id", "ha_prefix"):
        v = cfg[name]
        if v is None:  # device_id: the board's id
            lens.append(_DEFAULT_ID_LEN)
            continue
        if not v:
            return name + ": must not be empty"
        if "+" in v or "#" in v or "\x00" in v:
            return name + ": must not contain +, # or NUL (MQTT topic names)"
        try:
            lens.append(len(v.encode()))
        except UnicodeError:
            return name + ": not valid UTF-8"
    p, d, h = lens
    longest = max(p + d + len("//reply/") + _CMD_NAME_MAX, h + p + d + _HA_EXTRA)
    if longest > _TOPIC_MAX:
        return "prefix, device_id, ha_prefix: too long: topics of %d bytes, at most %d fit" % (
            longest,
            _TOPIC_MAX,
        )
    return None


def secure_problem(cfg):
    """None when the security settings are consistent, else the message. They fail
    closed: the node does not connect with a configuration that has one of these."""
    key = cfg["cmd_key"]
    if key is not None and len(key) < _KEY_MIN:
        return "cmd_key: must be at least %d characters (or null: unsigned commands)" % _KEY_MIN
    b = cfg["broker"]
    for k in ("ca", "cert", "key"):
        if b[k] == "":
            return "broker." + k + ": must be a file path or null"
    if (b["cert"] is None) != (b["key"] is None):
        return "broker.cert, broker.key: give both or neither"
    if not b["tls"] and (b["ca"] or b["cert"]):
        return "broker.ca, broker.cert, broker.key: need broker.tls true"
    return None


def _remote_list(cfg, problems):
    names = cfg["remote_config"]
    if names is None:
        cfg["remote_config"] = list(LIVE)
        return
    out = []
    for name in names:
        if type(name) is not str or _spec_for(name) is None:
            problems.append("remote_config: unknown setting (ignored): " + str(name)[:40])
        elif name in NEVER_REMOTE:
            problems.append("remote_config: " + name + " is never remotely changeable")
        else:
            out.append(name)
    cfg["remote_config"] = out


def validate(raw):
    """Validate a parsed config object. Returns (config, problems): a complete config
    dict with every default filled in, and a list of messages (wrong types, values out of
    range, unknown keys) that never contain a value. Raises ConfigError when the result
    cannot work or must not be used: not an object, no broker host, a topic part that
    cannot work, a wrong security setting (SECURE, secure_problem)."""
    if type(raw) is not dict:
        raise ConfigError("config.json: expected a JSON object")
    problems = []  # type: list[str]
    cfg = _fill(SCHEMA, raw, "", problems)
    if not cfg["broker"]["host"]:
        raise ConfigError(
            'config.json: broker.host is missing (e.g. "broker": {"host": "192.168.1.10"})'
        )
    msg = topic_problem(cfg) or secure_problem(cfg)
    if msg:
        raise ConfigError(msg)
    _remote_list(cfg, problems)
    _check_watchdog(cfg, problems)
    return cfg, problems


def load(path="config.json"):
    """Read and validate the config file once. Returns (config, raw, problems); raw is
    the file's own object, kept so that save() writes back only what the user wrote.
    Raises ConfigError for a missing or unparsable file or a missing broker host."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError(path + ": not found (copy config.example.json and edit it)")
    try:
        raw = json.loads(text)
    except ValueError:
        raise ConfigError(path + ": not valid JSON")
    cfg, problems = validate(raw)
    return cfg, raw, problems


def redacted(cfg):
    """A copy of cfg with every non-empty secret replaced by "***", safe to print (the
    list of secrets is app.admin's, which shows the config without loading this module)."""
    from app.admin import redacted as _redacted

    return _redacted(cfg)


def _spec_for(name):
    """(section or None, key, spec) for a dotted setting name, or None if unknown."""
    section, _, key = name.partition(".")
    if not key:
        spec = SCHEMA.get(section)
        if spec is None or spec[0] == _SECTION:
            return None
        return None, section, spec
    fields = SECTIONS.get(section)
    if fields is None or key not in fields:
        return None
    return section, key, fields[key]


def change(cfg, raw, changes):
    """Apply {"name" or "section.key": value} to both cfg and raw, all or nothing. Only
    names in cfg["remote_config"] may change (never NEVER_REMOTE). Returns the names whose
    value differs (a change to the same value is no change). Raises ValueError(message)
    naming the first bad setting; nothing is changed then."""
    if type(changes) is not dict or not changes:
        raise ValueError('expected an object of settings, e.g. {"interval_s": 30}')
    allowed = cfg["remote_config"]
    found = []
    for name in changes:
        where = _spec_for(name)
        if where is None:
            raise ValueError(name[:40] + ": unknown setting")
        if name in NEVER_REMOTE or name not in allowed:
            raise ValueError("not remotely configurable: " + name)
        msg = check_value(name, where[2], changes[name])
        if msg:
            raise ValueError(msg)
        if name == "broker.host" and not changes[name]:
            raise ValueError("broker.host: must not be empty")
        found.append(where)
    trial = _copy(cfg)
    for i, name in enumerate(changes):
        section, key, _ = found[i]
        (trial if section is None else trial[section])[key] = changes[name]
    msg = watchdog_problem(trial)[0] or topic_problem(trial) or secure_problem(trial)
    if msg:
        raise ValueError(msg)
    names = []  # type: list[str]
    for i, name in enumerate(changes):
        section, key, _ = found[i]
        v = changes[name]
        if (cfg if section is None else cfg[section])[key] == v:
            continue
        if section is None:
            cfg[key] = _copy(v)
            raw[key] = _copy(v)
        else:
            cfg[section][key] = _copy(v)
            sub = raw.get(section)
            if type(sub) is not dict:
                sub = raw[section] = {}
            sub[key] = _copy(v)
        names.append(name)
    return names


def board_defaults(cfg, raw, defaults, problems):
    """Lay the board's "defaults" over the built-in ones: each applies where the file
    itself did not set that key. Bad entries go to problems."""
    if type(defaults) is not dict:
        return
    for key in defaults:
        where = _spec_for(key)
        if where is None:
            problems.append("board defaults: " + key + ": unknown setting (ignored)")
            continue
        section, k, spec = where
        if section is None:
            if key in raw:
                continue
        elif type(raw.get(section)) is dict and k in raw[section]:
            continue
        msg = check_value(key, spec, defaults[key])
        if msg:
            problems.append("board defaults: " + msg)
        elif section is None:
            cfg[k] = _copy(defaults[key])
        else:
            cfg[section][k] = _copy(defaults[key])
    _check_watchdog(cfg, problems)
