# hal.sht4x: the datasheet's CRC example and conversion formulas, the command flow on a fake
# I2C device, CRC mismatches, bus errors and a missing chip.
import fakes

from hal import SensorError
from hal.sht4x import SHT4x, convert_rh, convert_t, crc8
from support import Rng, raises


def _word(v):
    b = bytes([v >> 8, v & 0xFF])
    return b + bytes([crc8(b, 0, 2)])


def _chip(st=0x6666, srh=0x8000):
    return fakes.machine.I2CCommands(
        {0xFD: _word(st) + _word(srh), 0x89: _word(0x1234) + _word(0x5678)}
    )


def test_crc_matches_the_datasheet_example():
    assert crc8(b"\xbe\xef", 0, 2) == 0x92
    assert crc8(b"\x00\xbe\xef", 1, 2) == 0x92
    assert crc8(b"\x00\x00", 0, 2) == 0x81


def test_conversion_endpoints():
    assert convert_t(0) == -4500  # -45.00 degC
    assert convert_t(65535) == 13000  # 130.00 degC
    assert convert_rh(0) == 0  # -6 %RH cropped
    assert convert_rh(65535) == 10000  # 119 %RH cropped
    assert convert_rh(0x0C4A) == 0  # just below 0 %RH


def test_conversion_is_the_datasheet_formula_rounded():
    rng = Rng(4)
    for _ in range(300):
        raw = rng.below(65536)
        assert convert_t(raw) == int(-4500 + 17500 * raw / 65535 + 100000.5) - 100000, raw
        rh = int(-600 + 12500 * raw / 65535 + 100000.5) - 100000
        assert convert_rh(raw) == min(10000, max(0, rh)), raw


def test_read_sends_the_high_repeatability_command():
    with fakes.installed() as f:
        dev = f.machine.attach(0, 0x44, _chip())
        s = SHT4x(f.machine.I2C(0))
        r = s.read()
        assert dev.commands == [b"\xfd"]
        assert s.t_centi == -4500 + (17500 * 0x6666 + 32767) // 65535  # 25.00 degC
        assert r["temperature_c"] == 25.0
        assert r["humidity_pct"] == 56.5  # -6 + 125 * 0x8000 / 65535


def test_crc_mismatch_in_either_word_is_a_sensor_error():
    for bad in (2, 5):
        with fakes.installed() as f:
            raw = bytearray(_word(0x6666) + _word(0x8000))
            raw[bad] ^= 0x01
            f.machine.attach(0, 0x44, fakes.machine.I2CCommands({0xFD: bytes(raw)}))
            e = raises(SensorError, SHT4x(f.machine.I2C(0)).read)
            assert e.args[0] == "sht4x: CRC mismatch"


def test_missing_chip_and_bus_timeout_are_sensor_errors():
    with fakes.installed() as f:
        e = raises(SensorError, SHT4x(f.machine.I2C(0)).read)
        assert e.args[0] == "sht4x: no device (NACK)"
        dev = f.machine.attach(0, 0x44, _chip())
        dev.fail.append(110)
        s = SHT4x(f.machine.I2C(0))
        e = raises(SensorError, s.read)
        assert e.args[0] == "sht4x: bus timeout"
        assert s.read()["temperature_c"] == 25.0  # and it recovers


def test_serial_number():
    with fakes.installed() as f:
        f.machine.attach(0, 0x45, _chip())
        assert SHT4x(f.machine.I2C(0), 0x45).serial() == 0x12345678
