# hal.bme280: Bosch BME280 temperature / humidity / pressure sensor over I2C, forced mode.
# Layer: lib/hal. Compensation is the datasheet's integer code (BME280 datasheet rev 1.6,
# section 4.2.3 and 8.2: 32-bit temperature and humidity, 64-bit pressure).
from hal.errors import SensorError, bus_error
from mote.compat import const, sleep_ms

_CHIP_ID = const(0x60)  # BMP280 answers 0x58 (no humidity): rejected with its id
_REG_CALIB0 = const(0x88)  # 0x88..0xA1: T1..T3, P1..P9, (0xA0 unused), H1
_REG_ID = const(0xD0)
_REG_RESET = const(0xE0)
_REG_CALIB1 = const(0xE1)  # 0xE1..0xE7: H2..H6
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_CONFIG = const(0xF5)
_REG_DATA = const(0xF7)  # press[3], temp[3], hum[2]
_SOFT_RESET = const(0xB6)
_STATUS_MEASURING = const(0x08)
_STATUS_IM_UPDATE = const(0x01)
_OSRS_X1 = const(1)
_MODE_FORCED = const(1)
# Datasheet 9.1: t_measure,max = 1.25 + 2.3 * 3 + 0.575 * 2 ms = 9.3 ms with x1 everywhere.
_MEAS_MS = const(10)
_POLLS = const(5)
_SKIPPED_20 = const(0x80000)  # value of a temperature/pressure channel that did not convert
_SKIPPED_16 = const(0x8000)


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _s16(b, i):
    v = b[i] | (b[i + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


def _s8(v):
    return v - 0x100 if v & 0x80 else v


def compensate_t(c, adc_t):
    """Temperature in 0.01 degC from a 20-bit reading; sets c.t_fine (used by P and H)."""
    var1 = (((adc_t >> 3) - (c.t1 << 1)) * c.t2) >> 11
    d = (adc_t >> 4) - c.t1
    var2 = (((d * d) >> 12) * c.t3) >> 14
    c.t_fine = var1 + var2
    return (c.t_fine * 5 + 128) >> 8


def compensate_p(c, adc_p):
    """Pressure in Pa as unsigned Q24.8 (value / 256 = Pa); 0 if the calibration is bad.

    Needs c.t_fine from compensate_t. The 64-bit intermediates are long ints on a port
    with 31-bit small ints: a few small allocations per read."""
    var1 = c.t_fine - 128000
    var2 = var1 * var1 * c.p6
    var2 += (var1 * c.p5) << 17
    var2 += c.p4 << 35
    var1 = ((var1 * var1 * c.p3) >> 8) + ((var1 * c.p2) << 12)
    var1 = (((1 << 47) + var1) * c.p1) >> 33
    if var1 == 0:
        return 0  # the datasheet's guard against division by zero
    p = 1048576 - adc_p
    n = ((p << 31) - var2) * 3125
    # C divides towards zero, Python floors: the same for a positive quotient.
    p = n // var1 if (n >= 0) == (var1 > 0) else -(-n // var1)
    var1 = (c.p9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (c.p8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (c.p7 << 4)


def compensate_h(c, adc_h):
    """Relative humidity in %RH as unsigned Q22.10 (value / 1024 = %RH); needs c.t_fine."""
    x = c.t_fine - 76800
    v = (((adc_h << 14) - (c.h4 << 20) - (c.h5 * x)) + 16384) >> 15
    w = (((((x * c.h6) >> 10) * (((x * c.h3) >> 11) + 32768)) >> 10) + 2097152) * c.h2 + 8192
    v *= w >> 14
    v -= ((((v >> 15) * (v >> 15)) >> 7) * c.h1) >> 4
    if v < 0:
        v = 0
    elif v > 419430400:
        v = 419430400
    return v >> 12


class BME280:
    """BME280 on an I2C bus (machine.I2C or anything with the same *_mem_into methods).

    The constructor allocates the buffers and does not touch the bus, so a missing chip
    shows up as SensorError from read(). The chip is (re)initialised on the first read and
    after any bus error. Integer results of the last read: t_centi (0.01 degC),
    p_q8 (Pa * 256), h_q10 (%RH * 1024)."""

    name = "bme280"

    def __init__(self, i2c, addr=0x76):
        self._i2c = i2c
        self._addr = addr
        self._cal0 = bytearray(26)
        self._cal1 = bytearray(7)
        self._data = bytearray(8)
        self._b1 = bytearray(1)
        self._ready = False
        self.t1 = self.t2 = self.t3 = 0
        self.p1 = self.p2 = self.p3 = self.p4 = self.p5 = 0
        self.p6 = self.p7 = self.p8 = self.p9 = 0
        self.h1 = self.h2 = self.h3 = self.h4 = self.h5 = self.h6 = 0
        self.t_fine = 0
        self.t_centi = self.p_q8 = self.h_q10 = 0

    def _reg(self, reg):
        self._i2c.readfrom_mem_into(self._addr, reg, self._b1)
        return self._b1[0]

    def _put(self, reg, value):
        self._b1[0] = value
        self._i2c.writeto_mem(self._addr, reg, self._b1)

    def _init(self):
        chip = self._reg(_REG_ID)
        if chip != _CHIP_ID:
            raise SensorError("bme280: wrong chip id", chip)
        self._put(_REG_RESET, _SOFT_RESET)
        sleep_ms(3)  # datasheet 1.1: start-up time 2 ms
        for _ in range(_POLLS):
            if not self._reg(_REG_STATUS) & _STATUS_IM_UPDATE:
                break
            sleep_ms(2)
        self._i2c.readfrom_mem_into(self._addr, _REG_CALIB0, self._cal0)
        self._i2c.readfrom_mem_into(self._addr, _REG_CALIB1, self._cal1)
        self.set_calibration(self._cal0, self._cal1)
        self._put(_REG_CONFIG, 0)  # no IIR filter, no standby (forced mode)
        self._put(_REG_CTRL_HUM, _OSRS_X1)  # takes effect with the next ctrl_meas write
        self._ready = True

    def set_calibration(self, a, b):
        """Parse calibration blocks a (0x88..0xA1) and b (0xE1..0xE7) into attributes."""
        self.t1 = _u16(a, 0)
        self.t2 = _s16(a, 2)
        self.t3 = _s16(a, 4)
        self.p1 = _u16(a, 6)
        self.p2 = _s16(a, 8)
        self.p3 = _s16(a, 10)
        self.p4 = _s16(a, 12)
        self.p5 = _s16(a, 14)
        self.p6 = _s16(a, 16)
        self.p7 = _s16(a, 18)
        self.p8 = _s16(a, 20)
        self.p9 = _s16(a, 22)
        self.h1 = a[25]
        self.h2 = _s16(b, 0)
        self.h3 = b[2]
        # H4 and H5 are signed 12-bit values sharing the nibbles of 0xE5.
        self.h4 = (_s8(b[3]) << 4) | (b[4] & 0x0F)
        self.h5 = (_s8(b[5]) << 4) | (b[4] >> 4)
        self.h6 = _s8(b[6])

    def read(self):
        """One forced-mode measurement (about 10 ms, blocking).

        Returns {"temperature_c", "humidity_pct", "pressure_hpa"}; raises SensorError.
        Allocates the result dict, its floats and the pressure long ints."""
        try:
            if not self._ready:
                self._init()
            self._put(_REG_CTRL_MEAS, (_OSRS_X1 << 5) | (_OSRS_X1 << 2) | _MODE_FORCED)
            sleep_ms(_MEAS_MS)
            for _ in range(_POLLS):
                if not self._reg(_REG_STATUS) & _STATUS_MEASURING:
                    break
                sleep_ms(2)
            else:
                self._ready = False
                raise SensorError("bme280: measurement did not finish")
            self._i2c.readfrom_mem_into(self._addr, _REG_DATA, self._data)
        except OSError as e:
            self._ready = False
            raise bus_error(self.name, e)
        d = self._data
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        if adc_t == _SKIPPED_20 or adc_p == _SKIPPED_20 or adc_h == _SKIPPED_16:
            self._ready = False  # still the reset values: the chip lost its settings
            raise SensorError("bme280: no measurement data")
        self.t_centi = compensate_t(self, adc_t)
        self.p_q8 = compensate_p(self, adc_p)
        self.h_q10 = compensate_h(self, adc_h)
        if self.p_q8 == 0:
            self._ready = False
            raise SensorError("bme280: bad calibration")
        return {
            "temperature_c": self.t_centi / 100,
            "humidity_pct": ((self.h_q10 * 10 + 512) >> 10) / 10,
            "pressure_hpa": ((self.p_q8 + 128) >> 8) / 100,
        }
