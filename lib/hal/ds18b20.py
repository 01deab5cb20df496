# hal.ds18b20: DS18B20 1-Wire thermometer through MicroPython's `onewire` and `ds18x20`
# modules (in the ESP32 firmware). Layer: lib/hal. Those and `machine` are imported by the
# constructor only.
from hal.errors import SensorError, bus_error
from mote.compat import const, sleep_ms

_CONVERT_MS = const(750)  # datasheet: 12-bit conversion time, max 750 ms
_POWER_ON_C = 85.0  # the scratchpad's reset value: a conversion that never ran


class DS18B20:
    """The index-th DS18B20 on a 1-Wire bus on one GPIO (a 4.7 kohm pull-up to 3.3 V).

    read() blocks for the conversion (750 ms, through sleep, which tests replace)."""

    name = "ds18b20"

    def __init__(self, pin, index=0, sleep=sleep_ms):
        import ds18x20
        import machine
        import onewire

        self._ds = ds18x20.DS18X20(onewire.OneWire(machine.Pin(pin)))
        self._index = index
        self._sleep = sleep
        self._rom = None

    def read(self):
        """Returns {"temperature_c"}; raises SensorError (no sensor, bus or CRC error)."""
        try:
            if self._rom is None:
                roms = self._ds.scan()
                if len(roms) <= self._index:
                    raise SensorError("ds18b20: no sensor on the bus", len(roms))
                self._rom = roms[self._index]
            self._ds.convert_temp()
            self._sleep(_CONVERT_MS)
            t = self._ds.read_temp(self._rom)
        except OSError as e:
            self._rom = None  # rescan next time: the sensor may have been replaced
            raise bus_error(self.name, e)
        except SensorError:
            raise
        except Exception as e:
            # ds18x20 raises a plain Exception("CRC error") for a bad scratchpad; OSError
            # and SensorError are handled above, so this is the CRC case.
            self._rom = None
            raise SensorError("ds18b20: CRC mismatch", e.args[0] if e.args else None)
        if t is None or t == _POWER_ON_C:
            raise SensorError("ds18b20: no conversion (power-on value)", t)
        return {"temperature_c": round(t, 2)}
