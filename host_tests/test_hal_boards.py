# boards/: every board file is pure data of the documented shape and builds its drivers on
# the fake ESP32 modules; config overrides, bad pins, unknown drivers, missing modules.
import fakes
from test_hal_bme280 import chip as bme280_chip
from test_hal_sht4x import _chip as sht4x_chip

import hal
from hal import SensorError
from support import raises, repo_path

BOARDS = ("esp32", "esp32s3", "esp32c3", "host")
REAL = ("esp32", "esp32s3", "esp32c3")
CONFIG = {"wifi": {"ssid": "home", "password": "secret"}}


def load(name):
    with open(repo_path("boards", name, "board.py")) as f:
        src = f.read()
    g = {}
    exec(src, g)
    return src, g["BOARD"]


def _chips(f, bus=0):
    f.machine.attach(bus, 0x76, bme280_chip())
    f.machine.attach(bus, 0x44, sht4x_chip())


def test_every_board_file_is_pure_data_of_the_documented_shape():
    for name in BOARDS:
        src, b = load(name)
        assert "import" not in src.replace("# ", ""), name
        assert b["name"] == name
        for key in ("led", "i2c", "sensors", "defaults"):
            assert key in b, (name, key)
        assert isinstance(b["sensors"], list) and b["sensors"]
        assert b["defaults"]["interval_s"] > 0


def test_every_real_board_builds_and_reads_on_the_fakes():
    for name in REAL:
        with fakes.installed() as f:
            _chips(f)
            src, board = load(name)
            hw = hal.build(board, CONFIG)
            assert hw.errors == [], (name, hw.errors)
            assert hw.name == name
            assert [s.name for s in hw.sensors] == board["sensors"]
            for s in hw.sensors:
                r = s.read()
                assert r and all(isinstance(v, float) for v in r.values()), (name, r)
            hw.network.up()
            assert hw.network.isconnected()
            hw.led.on()
            assert hw.led.value()
            hw.led.toggle()
            assert not hw.led.value()
            assert hw.system.unique_id() == f.machine.unique_id_value
            i2c = f.machine._buses[board["i2c"]["id"]]
            assert 0x76 in i2c and 0x44 in i2c


def test_the_i2c_bus_gets_the_board_pins():
    with fakes.installed() as f:
        _chips(f)
        src, board = load("esp32")
        hw = hal.build(board, CONFIG)
        i2c = hw.sensors[0]._i2c
        assert (i2c.sda.id, i2c.scl.id, i2c.freq) == (21, 22, 100_000)


def test_led_polarity_and_neopixel():
    with fakes.installed() as f:
        hw = hal.build(load("esp32c3")[1], CONFIG)
        pin = f.machine.pins[8]
        assert pin.value() == 1  # active low: off at start
        hw.led.on()
        assert pin.value() == 0 and hw.led.value()
        hw = hal.build(load("esp32")[1], CONFIG)
        hw.led.on()
        assert f.machine.pins[2].value() == 1
        hw = hal.build(load("esp32s3")[1], CONFIG)
        np = f.neopixel.last
        assert np.pin.id == 48 and np[0] == (0, 0, 0)
        hw.led.on()
        assert np[0] != (0, 0, 0) and np.writes >= 2


def test_config_overrides_board_keys_and_sensors():
    with fakes.installed() as f:
        cfg = {"board": {"led": {"neopixel": 38}}, "sensors": ["dht22", "ds18b20", "mcu"]}
        hw = hal.build(load("esp32s3")[1], cfg)
        assert hw.errors == []
        assert f.neopixel.last.pin.id == 38  # a DevKitC-1 v1.1
        assert [s.name for s in hw.sensors] == ["dht22", "ds18b20", "mcu"]
        hw.sensors[1]._sleep = lambda ms: None
        assert hw.sensors[0].read() == {"temperature_c": 22.5, "humidity_pct": 41.0}
        assert hw.sensors[1].read() == {"temperature_c": 21.5}
        assert hw.sensors[2].read() == {"mcu_temperature_c": 41.5}


def test_missing_chips_do_not_stop_the_build():
    with fakes.installed():
        hw = hal.build(load("esp32")[1], CONFIG)
        assert hw.errors == []
        e = raises(SensorError, hw.sensors[0].read)
        assert e.args[0] == "bme280: no device (NACK)"


def test_bad_pins_unknown_drivers_and_missing_modules_are_reported():
    with fakes.installed(without=("neopixel",)):
        board = load("esp32s3")[1]
        cfg = {
            "board": {"i2c": {"id": 0, "sda": 99, "scl": 9}},
            "sensors": ["bme280", "sht4x", "co2"],
        }
        hw = hal.build(board, dict(CONFIG, **cfg))
        assert len(hw.errors) == 4, hw.errors
        assert hw.errors[0].startswith("led: ") and "neopixel" in hw.errors[0]
        assert hw.errors[1].startswith("bme280: ValueError")
        assert hw.errors[3] == "co2: unknown sensor driver"
        assert [s.name for s in hw.sensors] == ["bme280", "sht4x"]
        e = raises(SensorError, hw.sensors[0].read)
        assert e.args[0] == "bme280: not available"
        hw.led.on()  # the do-nothing LED
        assert hw.led.value()


def test_a_board_without_led_gets_a_do_nothing_led():
    with fakes.installed():
        board = dict(load("esp32")[1], led=None)
        hw = hal.build(board, CONFIG)
        hw.led.toggle()
        assert hw.led.value() and hw.errors == []
