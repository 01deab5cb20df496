# hal.bme280: the datasheet's integer compensation against its worked example, the I2C
# flow on a fake register map, and bus errors, wrong chips and missing chips.
import fakes

from hal import SensorError
from hal.bme280 import BME280, compensate_h, compensate_p, compensate_t
from support import raises

# The compensation example printed in the Bosch datasheet (BMP280 DS, table "compensation
# example"; BME280 shares the temperature and pressure formulas).
T_CAL = (27504, 26435, -1000)
P_CAL = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
ADC_T = 519888
ADC_P = 415148
# Typical humidity trimming values of a BME280 (the datasheet prints no example).
H_CAL = (75, 362, 0, 313, 50, 30)


class Cal:
    pass


def _cal():
    c = Cal()
    c.t1, c.t2, c.t3 = T_CAL
    c.p1, c.p2, c.p3, c.p4, c.p5, c.p6, c.p7, c.p8, c.p9 = P_CAL
    c.h1, c.h2, c.h3, c.h4, c.h5, c.h6 = H_CAL
    c.t_fine = 0
    return c


def _le16(v):
    v &= 0xFFFF
    return bytes([v & 0xFF, v >> 8])


def _calib_blocks(t=T_CAL, p=P_CAL, h=H_CAL):
    a = bytearray()
    for v in t + p:
        a += _le16(v)
    a += bytes([0, h[0]])  # 0xA0 unused, 0xA1 H1
    h4, h5 = h[3] & 0xFFF, h[4] & 0xFFF
    b = _le16(h[1]) + bytes([h[2], h4 >> 4, (h4 & 0x0F) | ((h5 & 0x0F) << 4), h5 >> 4])
    b += bytes([h[5] & 0xFF])
    return bytes(a), b


def _data(adc_p, adc_t, adc_h):
    return bytes(
        [adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4]
        + [adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4]
        + [adc_h >> 8, adc_h & 0xFF]
    )


def chip(chip_id=0x60, adc_h=30000):
    """A fake BME280 register map holding the datasheet example."""
    a, b = _calib_blocks()
    return fakes.machine.I2CRegisters(
        {0xD0: chip_id, 0x88: a, 0xE1: b, 0xF3: 0, 0xF7: _data(ADC_P, ADC_T, adc_h)}
    )


def _h_float(c, adc_h):
    # Datasheet 8.1 (floating point humidity), as an independent check of the integer path.
    var_h = c.t_fine - 76800.0
    var_h = (adc_h - (c.h4 * 64.0 + c.h5 / 16384.0 * var_h)) * (
        c.h2 / 65536.0 * (1.0 + c.h6 / 67108864.0 * var_h * (1.0 + c.h3 / 67108864.0 * var_h))
    )
    var_h = var_h * (1.0 - c.h1 * var_h / 524288.0)
    return min(100.0, max(0.0, var_h))


def test_temperature_matches_the_datasheet_example():
    c = _cal()
    assert compensate_t(c, ADC_T) == 2508  # 25.08 degC
    assert c.t_fine == 128422


def test_pressure_matches_the_datasheet_example():
    c = _cal()
    compensate_t(c, ADC_T)
    p = compensate_p(c, ADC_P)
    assert p >> 8 == 100653  # Pa; the datasheet's double result is 100653.27 Pa
    assert abs(p / 256 - 100653.27) < 0.05


def test_humidity_agrees_with_the_floating_point_formula():
    c = _cal()
    compensate_t(c, ADC_T)
    for adc_h in (20000, 27000, 30000, 34000, 40000):
        got = compensate_h(c, adc_h) / 1024
        assert abs(got - _h_float(c, adc_h)) < 0.05, (adc_h, got)


def test_humidity_is_clamped_to_0_and_100():
    c = _cal()
    compensate_t(c, ADC_T)
    assert compensate_h(c, 0) == 0
    assert compensate_h(c, 65535) == 100 << 10


def test_read_over_i2c_gives_named_units():
    with fakes.installed() as f:
        dev = f.machine.attach(0, 0x76, chip())
        s = BME280(f.machine.I2C(0), 0x76)
        r = s.read()
        assert r["temperature_c"] == 25.08
        assert r["pressure_hpa"] == 1006.53
        assert 0 < r["humidity_pct"] < 100
        assert s.t_centi == 2508
        regs = [w[0] for w in dev.writes]
        # reset, config, ctrl_hum, then ctrl_meas: ctrl_hum only applies after ctrl_meas.
        assert regs == [0xE0, 0xF5, 0xF2, 0xF4]
        assert dev.writes[3] == (0xF4, b"\x25")  # osrs_t x1, osrs_p x1, forced mode
        s.read()
        assert [w[0] for w in dev.writes[4:]] == [0xF4]  # calibration is read once


def test_calibration_parses_signed_12_bit_h4_and_h5():
    a, b = _calib_blocks(h=(75, -5, 7, -300, -2, -20))
    s = BME280(None)
    s.set_calibration(a, b)
    assert (s.h1, s.h2, s.h3, s.h4, s.h5, s.h6) == (75, -5, 7, -300, -2, -20)
    assert (s.t1, s.t2, s.t3) == T_CAL
    assert s.p9 == 6000 and s.p8 == -14600


def test_wrong_chip_id_is_a_sensor_error():
    with fakes.installed() as f:
        f.machine.attach(0, 0x76, chip(chip_id=0x58))  # a BMP280
        e = raises(SensorError, BME280(f.machine.I2C(0)).read)
        assert "chip id" in e.args[0] and e.args[1] == 0x58


def test_missing_chip_is_a_sensor_error():
    with fakes.installed() as f:
        e = raises(SensorError, BME280(f.machine.I2C(0), 0x77).read)
        assert e.args[0] == "bme280: no device (NACK)"


def test_bus_error_is_reported_then_the_chip_is_set_up_again():
    with fakes.installed() as f:
        dev = f.machine.attach(0, 0x76, chip())
        s = BME280(f.machine.I2C(0))
        s.read()
        dev.fail.append(5)
        e = raises(SensorError, s.read)
        assert e.args[0] == "bme280: I/O error" and e.args[1] == 5
        n = len(dev.writes)
        assert s.read()["temperature_c"] == 25.08
        assert dev.writes[n][0] == 0xE0  # re-initialised after the error


def test_unconverted_data_is_a_sensor_error():
    with fakes.installed() as f:
        dev = f.machine.attach(0, 0x76, chip())
        dev.load(0xF7, b"\x80\x00\x00\x80\x00\x00\x80\x00")  # the reset values
        e = raises(SensorError, BME280(f.machine.I2C(0)).read)
        assert "no measurement" in e.args[0]


def test_a_measurement_that_never_finishes_is_a_sensor_error():
    with fakes.installed() as f:
        dev = f.machine.attach(0, 0x76, chip())
        s = BME280(f.machine.I2C(0))
        s.read()
        dev.load(0xF3, 0x08)  # status.measuring stuck
        e = raises(SensorError, s.read)
        assert "did not finish" in e.args[0]
