# app.telemetry: one reading as the contract's JSON object (layer: firmware). Each fitted
# sensor contributes its fields; a sensor that fails adds to an "error" field instead of
# the reading going missing. Floats stay here, at the JSON edge.
import json
import time

# time.time() above this means the real-time clock was set (NTP or the host's clock);
# before that it counts from the port's epoch and a timestamp would mislead.
_CLOCK_SET_S = 1_600_000_000


def wall_time_s():
    """Seconds since 1970 when the clock is set, else None."""
    t = time.time()
    return int(t) if t > _CLOCK_SET_S else None


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
