# hal.dht, hal.ds18b20, hal.mcu, hal.pinled, hal.pixel: the wrappers around MicroPython's own
# modules, on the fakes: errors become SensorError, rate limits, power-on values, polarity.
import fakes

from hal import SensorError
from hal.dht import DHT
from hal.ds18b20 import DS18B20
from hal.mcu import MCUSystem, MCUTemp
from hal.pinled import PinLED
from hal.pixel import NeoPixelLED
from support import MICROPYTHON, raises


def test_dht_timeout_and_checksum_become_sensor_errors():
    with fakes.installed() as f:
        f.dht.script.extend([OSError(110), OSError(5), (-3.2, 55.5)])
        d = DHT(15, "dht22")
        assert raises(SensorError, d.read).args[0] == "dht22: bus timeout"
        assert raises(SensorError, d.read).args[0] == "dht22: I/O error"
        assert d.read() == {"temperature_c": -3.2, "humidity_pct": 55.5}


def test_dht_is_not_read_faster_than_the_datasheet_allows():
    with fakes.installed() as f:
        d = DHT(15, "dht11")
        a = d.read()
        assert d.read() == a and f.dht.measures == 1
        raises(ValueError, DHT, 15, "dht99")


def test_ds18b20_reads_scans_and_reports_errors():
    with fakes.installed() as f:
        s = DS18B20(4, sleep=lambda ms: None)
        assert s.read() == {"temperature_c": 21.5} and f.ds18x20.conversions == 1
        f.ds18x20.script.extend([Exception("CRC error"), 85.0, OSError(110)])
        assert raises(SensorError, s.read).args[0] == "ds18b20: CRC mismatch"
        assert "power-on" in raises(SensorError, s.read).args[0]
        assert raises(SensorError, s.read).args[0] == "ds18b20: bus timeout"
        f.ds18x20.roms[:] = []
        assert raises(SensorError, s.read).args[0] == "ds18b20: no sensor on the bus"


def test_mcu_temperature_on_new_and_original_chips():
    with fakes.installed() as f:
        assert MCUTemp().read() == {"mcu_temperature_c": 41.5}
        del f.esp32.mcu_temperature  # the original ESP32: degF only
        f.esp32.raw_temperature_value = 122
        assert MCUTemp().read() == {"mcu_temperature_c": 50.0}
        del f.esp32.raw_temperature
        raises(SensorError, MCUTemp().read)


def test_mcu_system_on_the_fake_machine():
    with fakes.installed() as f:
        s = MCUSystem()
        assert s.unique_id() == b"\x24\x0a\xc4\x12\x34\x56"
        if MICROPYTHON:  # gc.mem_free() exists on every MicroPython port, not on CPython
            import gc

            gc.collect()
            before = gc.mem_free()
            junk = bytearray(40_000)
            junk = None  # garbage: mem_free() collects it before counting
            assert junk is None and s.mem_free() > before - 20_000
        raises(f.machine.ResetCalled, s.reset)
        raises(f.machine.DeepSleepCalled, s.deep_sleep, 1000)
        s.wdt_feed()  # before wdt_start: nothing to feed
        s.wdt_start(8000)
        s.wdt_feed()
        assert f.machine.last_wdt.timeout == 8000 and f.machine.last_wdt.feeds == 1
        s.rtc_write(b"state")
        assert s.rtc_read() == b"state"
        raises(ValueError, s.rtc_write, bytes(2049))
        assert s.reset_cause() == "power_on"
        f.machine.reset_cause_value = f.machine.DEEPSLEEP_RESET
        assert s.reset_cause() == "deep_sleep"


def test_pin_led_polarity():
    with fakes.installed() as f:
        led = PinLED(8, active_low=True)
        pin = f.machine.pins[8]
        led.on()
        led.toggle()
        led.toggle()
        assert pin.writes == [0, 1, 0] and led.value()
        led = PinLED(2)
        led.on()
        led.off()
        assert f.machine.pins[2].writes == [1, 0] and not led.value()


def test_neopixel_led_colour():
    with fakes.installed() as f:
        led = NeoPixelLED(48, (10, 0, 0))
        led.on()
        assert f.neopixel.last[0] == (10, 0, 0)
        led.toggle()
        assert f.neopixel.last[0] == (0, 0, 0) and not led.value()
