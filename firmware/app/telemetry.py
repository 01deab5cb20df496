# app.telemetry: one reading as the contract's JSON object (layer: firmware). Each fitted
# sensor contributes its fields; a sensor that fails adds to an "error" field instead of
# the reading going missing. Floats stay here, at the JSON edge.
import json
import time


def epoch_offset_s(year):
    """Seconds from 1970-01-01 to 1 January of year (a port's epoch): 0 for 1970,
    946684800 for 2000 (the ESP32 and the other bare-metal ports)."""
    days = 365 * (year - 1970)
    for y in range(1970, year):
        if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
            days += 1
    return days * 86400


# time.time() counts from the port's epoch: 1970 on the unix port and CPython, 2000 on an
# ESP32. Readings carry Unix seconds whatever the port.
EPOCH_OFFSET_S = epoch_offset_s(time.gmtime(0)[0])

# Unix time above this means the clock was set (NTP, or the host's clock): an ESP32
# starts at its epoch on power-on, and a timestamp from then would mislead.
CLOCK_SET_S = 1_600_000_000


def wall_time_s(port_s=None, offset_s=None):
    """Unix seconds (since 1970) when the clock is set, else None. port_s is time.time()
    (default: now) in the port's epoch, offset_s that epoch (default: this port's).
    Allocates on an ESP32 (Unix time is beyond its 2**30 small ints): JSON edge only."""
    if port_s is None:
        port_s = time.time()
    if offset_s is None:
        offset_s = EPOCH_OFFSET_S
    if port_s <= CLOCK_SET_S - offset_s:
        return None
    return int(port_s) + offset_s


def sample(sensors, seq, uptime_s, rssi=None, sensor_error_type=Exception):
    """Read every sensor once. Returns the reading dict: the sensors' fields, "rssi" when
    known, "uptime_s" (node time of the sample), "seq", "ts" (Unix seconds, only when
    the clock is set) and "error" ("<driver>: <reason>; ...") when a sensor failed.
    Only sensor_error_type (hal.SensorError) and OSError are caught: anything else is a
    bug and propagates to the main loop."""
    out = {}
    errors = []
    for s in sensors:
        try:
            fields = s.read()
        except (sensor_error_type, OSError) as e:
            msg = str(e.args[0]) if e.args else type(e).__name__
            if not msg.startswith(s.name):
                msg = s.name + ": " + msg
            errors.append(msg)
            continue
        for k in fields:
            out[k] = fields[k]
    if rssi is not None:
        out["rssi"] = rssi
    out["uptime_s"] = uptime_s
    out["seq"] = seq
    ts = wall_time_s()
    if ts is not None:
        out["ts"] = ts
    if errors:
        out["error"] = "; ".join(errors)
    return out


def encode(reading):
    """The reading as JSON bytes (what goes on <p>/<id>/telemetry)."""
    return json.dumps(reading).encode()


def with_age(payload, age_s):
    """payload (JSON object bytes) with "age_s" added: a reading delivered late says how
    long ago it was sampled. age_s <= 0 returns payload unchanged."""
    if age_s <= 0 or not payload.endswith(b"}"):
        return payload
    return payload[:-1] + b', "age_s": ' + str(age_s).encode() + b"}"
