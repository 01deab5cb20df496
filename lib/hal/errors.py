# hal.errors: the exceptions the HAL raises, and the table that names bus errnos.
# Layer: lib/hal (imports nothing from the hardware).


class SensorError(Exception):
    """A sensor could not be read: bus error, CRC mismatch or missing chip.

    args[0] is a constant message that starts with the driver name; values follow."""


class NetworkError(OSError):
    """The network did not come up (args: errno, message naming the last WLAN failure).
    Two arguments only: CPython's OSError moves a third one to .filename."""


class Reboot(Exception):
    """Raised by the host System.reset(): a device would restart here."""


class DeepSleep(Exception):
    """Raised by the host System.deep_sleep(ms): a device would sleep for .ms here."""

    def __init__(self, ms):
        super().__init__(ms)
        self.ms = ms


# errno -> what it means on an I2C or 1-Wire bus. ESP32 ports report a NACK (no chip at
# that address) as ENODEV and a stuck bus as ETIMEDOUT, which is 116 in the ESP32's
# newlib/lwIP numbering and 110 on Linux (the unix port and the fakes).
_BUS_ERRNO = {
    5: "I/O error",
    19: "no device (NACK)",
    110: "bus timeout",
    116: "bus timeout",
}


def bus_error(name, exc):
    """A SensorError for an OSError from a bus; name is the driver name. Allocates (error
    path only)."""
    code = exc.args[0] if exc.args else 0
    return SensorError(name + ": " + _BUS_ERRNO.get(code, "bus error"), code)
