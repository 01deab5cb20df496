# hal.sht4x: Sensirion SHT4x (SHT40/41/45) temperature / humidity sensor over I2C.
# Layer: lib/hal. Command, timing, CRC and conversion from the SHT4x datasheet (v6.x,
# sections 4.4 and 4.5).
from hal.errors import SensorError, bus_error
from mote.compat import const, sleep_ms

_CMD_MEASURE_HIGH = const(0xFD)  # high repeatability, no heater: max 8.3 ms
_CMD_SERIAL = const(0x89)
_CMD_SOFT_RESET = const(0x94)
_MEAS_MS = const(10)
_CRC_POLY = const(0x31)  # x^8 + x^5 + x^4 + 1
_CRC_INIT = const(0xFF)


def crc8(buf, off, n):
    """Sensirion CRC-8 (poly 0x31, init 0xFF, no reflection, no final xor) of buf[off:off+n].

    The datasheet's example: crc8(b"\\xbe\\xef", 0, 2) == 0x92. Allocates nothing."""
    crc = _CRC_INIT
    for i in range(off, off + n):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ _CRC_POLY) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def _scale(raw, span):
    """round(span * raw / 65535) for span a multiple of 4, without leaving small ints:
    span * 65535 would pass 2**30 on a 32-bit port (split into quotient and remainder)."""
    x = raw * (span >> 2)
    return (x // 65535) * 4 + ((x % 65535) * 4 + 32767) // 65535


def convert_t(raw):
    """Temperature in 0.01 degC: T = -45 + 175 * S_T / (2**16 - 1)."""
    return _scale(raw, 17500) - 4500


def convert_rh(raw):
    """Relative humidity in 0.01 %RH: RH = -6 + 125 * S_RH / (2**16 - 1), cropped to
    0..100 as the datasheet recommends."""
    rh = _scale(raw, 12500) - 600
    if rh < 0:
        return 0
    if rh > 10000:
        return 10000
    return rh


class SHT4x:
    """SHT4x on an I2C bus. The constructor allocates and does not touch the bus; read()
    raises SensorError for a bus error, a missing chip (NACK: ENODEV) or a CRC mismatch.
    Integer results of the last read: t_centi (0.01 degC), rh_centi (0.01 %RH)."""

    name = "sht4x"

    def __init__(self, i2c, addr=0x44):
        self._i2c = i2c
        self._addr = addr
        self._cmd = bytearray(1)
        self._buf = bytearray(6)  # T msb, lsb, crc, RH msb, lsb, crc
        self.t_centi = 0
        self.rh_centi = 0

    def _command(self, cmd, wait_ms):
        self._cmd[0] = cmd
        try:
            self._i2c.writeto(self._addr, self._cmd)
            sleep_ms(wait_ms)
            self._i2c.readfrom_into(self._addr, self._buf)
        except OSError as e:
            raise bus_error(self.name, e)
        b = self._buf
        if crc8(b, 0, 2) != b[2] or crc8(b, 3, 2) != b[5]:
            raise SensorError("sht4x: CRC mismatch")

    def serial(self):
        """The chip's 32-bit serial number (allocates a long int on 32-bit ports)."""
        self._command(_CMD_SERIAL, 1)
        b = self._buf
        return (b[0] << 24) | (b[1] << 16) | (b[3] << 8) | b[4]

    def read(self):
        """One high-repeatability measurement (about 10 ms, blocking).

        Returns {"temperature_c", "humidity_pct"}; raises SensorError. Allocates only the
        result dict and its floats."""
        self._command(_CMD_MEASURE_HIGH, _MEAS_MS)
        b = self._buf
        self.t_centi = convert_t((b[0] << 8) | b[1])
        self.rh_centi = convert_rh((b[3] << 8) | b[4])
        return {
            "temperature_c": self.t_centi / 100,
            "humidity_pct": ((self.rh_centi + 5) // 10) / 10,
        }
