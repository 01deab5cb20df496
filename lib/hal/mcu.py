# hal.mcu: the ESP32 itself: internal temperature sensor and the System (id, memory,
# reset, deep sleep, watchdog, RTC memory). Layer: lib/hal. `machine` and `esp32` are
# imported by the constructors only.
import gc

from hal.errors import SensorError
from mote.compat import const

_RTC_MAX = const(2048)  # RTC slow memory usable through machine.RTC().memory()


class MCUTemp:
    """The chip's internal temperature (die temperature: ambient plus self-heating).

    ESP32-S2/S3/C3/C6 have esp32.mcu_temperature() in degC; the original ESP32 only
    esp32.raw_temperature(), uncalibrated, in degF. Which one exists is looked up once."""

    name = "mcu"

    def __init__(self):
        import esp32

        self._celsius = getattr(esp32, "mcu_temperature", None)
        self._fahrenheit = getattr(esp32, "raw_temperature", None)

    def read(self):
        """Returns {"mcu_temperature_c"}; raises SensorError when the port has neither."""
        try:
            if self._celsius is not None:
                t = self._celsius()
            elif self._fahrenheit is not None:
                t = (self._fahrenheit() - 32) * 5 / 9
            else:
                raise SensorError("mcu: no temperature sensor on this port")
        except OSError as e:
            raise SensorError("mcu: read failed", e.args[0] if e.args else None)
        return {"mcu_temperature_c": round(t, 1)}


# machine.reset_cause() values -> names. Looked up by attribute in the constructor
# because the numbers differ between ports.
_CAUSES = (
    ("PWRON_RESET", "power_on"),
    ("HARD_RESET", "hard"),
    ("WDT_RESET", "watchdog"),
    ("DEEPSLEEP_RESET", "deep_sleep"),
    ("SOFT_RESET", "soft"),
)


class MCUSystem:
    """System on a real board, through `machine`."""

    def __init__(self):
        import machine

        self._machine = machine
        self._wdt = None
        self._rtc = machine.RTC()
        self._causes = {}
        for attr, name in _CAUSES:
            code = getattr(machine, attr, None)
            if code is not None:
                self._causes[code] = name

    def unique_id(self):
        return self._machine.unique_id()

    def mem_free(self):
        """Free heap in bytes after a full collection (without one, garbage that is
        merely unreachable counts as used and the figure wanders with the loop)."""
        gc.collect()
        return gc.mem_free()

    def reset(self):
        self._machine.reset()

    def deep_sleep(self, ms):
        self._machine.deepsleep(ms)

    def wdt_start(self, timeout_ms):
        """Start the hardware watchdog; it cannot be stopped again."""
        self._wdt = self._machine.WDT(0, timeout_ms)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def rtc_read(self):
        """Contents of RTC slow memory (survives deep sleep, not power loss)."""
        return bytes(self._rtc.memory())

    def rtc_write(self, data):
        if len(data) > _RTC_MAX:
            raise ValueError("RTC memory holds at most 2048 bytes", len(data))
        self._rtc.memory(data)

    def reset_cause(self):
        return self._causes.get(self._machine.reset_cause(), "unknown")
