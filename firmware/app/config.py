# app.config: load and validate config.json once (layer: firmware). Defaults fill what is
# missing, a wrong type or range falls back to the default and is reported, unknown keys
# are reported and ignored; only an unusable file or a missing broker host is fatal.
# Secrets (the WiFi and broker passwords) are never printed: use redacted() for output.
import json
import os

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
    "keepalive_s": (_INT, 60, 0, 65535),
    "clean_session": (_BOOL, False),
    "client_id": (_OSTR, None),
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
    "offline_bytes": (_INT, 4096, 0, 65536),
    "watchdog_s": (_INT, 120, 0, 3600),
    "backoff_max_s": (_INT, 60, 1, 3600),
    "board": (_DICT, {}),
    "sensors": (_LIST, None),
    "sim": (_DICT, {}),
    "wifi": (_SECTION, WIFI),
    "broker": (_SECTION, BROKER),
}

SECTIONS = {"wifi": WIFI, "broker": BROKER}

# (section, key) pairs whose values are never printed or echoed.
SECRETS = (("wifi", "password"), ("broker", "password"))

# Settings the running node applies at once; any other change needs a reboot.
LIVE = ("interval_s", "qos", "ha_discovery", "awake_s", "backoff_max_s")


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
        if msg:
            problems.append(msg + " (using the default)")
            out[key] = _copy(spec[1])
        else:
            out[key] = _copy(raw[key])
    for key in raw:
        if key not in schema:
            problems.append(prefix + key + ": unknown setting (ignored)")
    return out


def validate(raw):
    """Validate a parsed config object. Returns (config, problems): a complete config
    dict with every default filled in, and a list of messages (wrong types, values out of
    range, unknown keys) that never contain a value. Raises ConfigError when the result
    cannot work at all (not an object, no broker host)."""
    if type(raw) is not dict:
        raise ConfigError("config.json: expected a JSON object")
    problems = []  # type: list[str]
    cfg = _fill(SCHEMA, raw, "", problems)
    if not cfg["broker"]["host"]:
        raise ConfigError(
            'config.json: broker.host is missing (e.g. "broker": {"host": "192.168.1.10"})'
        )
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
    """A copy of cfg with every non-empty secret replaced by "***", safe to print."""
    out = _copy(cfg)
    for section, key in SECRETS:
        sub = out.get(section)
        if type(sub) is dict and sub.get(key):
            sub[key] = "***"
    return out


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
    """Apply {"name" or "section.key": value} to both cfg and raw, all or nothing.
    Returns the list of names changed. Raises ValueError(message) naming the first bad
    setting; nothing is changed then."""
    if type(changes) is not dict or not changes:
        raise ValueError('expected an object of settings, e.g. {"interval_s": 30}')
    found = []
    for name in changes:
        where = _spec_for(name)
        if where is None:
            raise ValueError(name + ": unknown setting")
        msg = check_value(name, where[2], changes[name])
        if msg:
            raise ValueError(msg)
        if name == "broker.host" and not changes[name]:
            raise ValueError("broker.host: must not be empty")
        found.append(where)
    names = []  # type: list[str]
    for name in changes:
        section, key, _ = found[len(names)]
        v = changes[name]
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
