# hal.dht: DHT11 / DHT22 (AM2302) through MicroPython's own `dht` module (in the ESP32
# firmware). Layer: lib/hal. `machine` and `dht` are imported by the constructor only.
from hal.errors import SensorError, bus_error
from mote.compat import ticks_diff, ticks_ms

# Datasheets: a DHT22 may be read at most every 2 s, a DHT11 every 1 s; a faster read
# returns the previous result instead of a stale or failed conversion.
_MIN_INTERVAL_MS = {"dht11": 1000, "dht22": 2000}


class DHT:
    """A DHT11 or DHT22 on one GPIO. kind is "dht11" or "dht22" (also the sensor name)."""

    def __init__(self, pin, kind="dht22"):
        if kind not in _MIN_INTERVAL_MS:
            raise ValueError("unknown DHT type", kind)
        import dht
        import machine

        self.name = kind
        p = machine.Pin(pin)
        self._dev = dht.DHT11(p) if kind == "dht11" else dht.DHT22(p)
        self._min_ms = _MIN_INTERVAL_MS[kind]
        self._last_ms = ticks_ms()
        self._last = None

    def read(self):
        """Returns {"temperature_c", "humidity_pct"}; raises SensorError (no answer:
        timeout; checksum mismatch: I/O error). Allocates the result dict."""
        now = ticks_ms()
        if self._last is not None and ticks_diff(now, self._last_ms) < self._min_ms:
            return dict(self._last)
        try:
            self._dev.measure()
        except OSError as e:
            raise bus_error(self.name, e)
        t = self._dev.temperature()
        h = self._dev.humidity()
        if h < 0 or h > 100:
            raise SensorError(self.name + ": implausible humidity", h)
        self._last = {"temperature_c": round(t, 1), "humidity_pct": round(h, 1)}
        self._last_ms = now
        return dict(self._last)
