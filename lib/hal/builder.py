# hal.builder: turns a board dict (boards/<board>/board.py, config overrides) into the
# drivers (layer: lib/hal). Runs once at boot through hal.build(), which forgets this module
# afterwards: nothing here may be referred to by what it builds.
from hal import Hardware


def _describe(e):
    return type(e).__name__ + ": " + " ".join(str(a) for a in e.args)


def merged_board(board, config):
    """BOARD with config["board"] (a dict) laid over it key by key, and config["sensors"]
    (a list of driver names) replacing the board's sensors. Allocates a new dict."""
    b = dict(board)
    over = config.get("board")
    if isinstance(over, dict):
        for k in over:
            b[k] = over[k]
    sensors = config.get("sensors")
    if isinstance(sensors, list):
        b["sensors"] = sensors
    return b


def _i2c(hw, board, cache):
    if "i2c" not in cache:
        cache["i2c"] = None
        spec = board.get("i2c")
        if not spec:
            hw.errors.append("i2c: the board has no I2C bus")
        else:
            import machine

            cache["i2c"] = machine.I2C(
                spec.get("id", 0),
                sda=machine.Pin(spec["sda"]),
                scl=machine.Pin(spec["scl"]),
                freq=spec.get("freq", 100_000),
            )
    if cache["i2c"] is None:
        raise ValueError("no I2C bus")
    return cache["i2c"]


def _sensor(hw, board, config, name, cache):
    opts = board.get(name) or {}
    if name == "sim":
        from hal.sim import SimSensor

        return SimSensor(config)
    if name == "bme280":
        from hal.bme280 import BME280

        return BME280(_i2c(hw, board, cache), opts.get("addr", 0x76))
    if name == "sht4x":
        from hal.sht4x import SHT4x

        return SHT4x(_i2c(hw, board, cache), opts.get("addr", 0x44))
    if name == "dht22" or name == "dht11" or name == "dht":
        from hal.dht import DHT

        spec = board.get("dht")
        if not spec:
            raise ValueError("no dht pin on this board")
        kind = spec.get("type", "dht22") if name == "dht" else name
        return DHT(spec["pin"], kind)
    if name == "ds18b20":
        from hal.ds18b20 import DS18B20

        spec = board.get("onewire")
        if not spec:
            raise ValueError("no onewire pin on this board")
        return DS18B20(spec["pin"], opts.get("index", 0))
    if name == "mcu":
        from hal.mcu import MCUTemp

        return MCUTemp()
    return None


def _led(board):
    spec = board.get("led")
    if spec and spec.get("sim"):
        from hal.sim import SimLED

        return SimLED()
    if spec and "neopixel" in spec:
        from hal.pixel import NeoPixelLED

        return NeoPixelLED(spec["neopixel"], spec.get("color", (0, 0, 24)))
    if spec and "pin" in spec:
        from hal.pinled import PinLED

        return PinLED(spec["pin"], spec.get("active_low", False))
    from hal.led import NullLED

    return NullLED()


# What build() survives while making a driver: a bad pin or argument (ValueError,
# TypeError), a missing key (KeyError), a port without the module (ImportError), a bus that
# will not start (OSError). Each becomes a line in hw.errors and a stand-in object.
_BUILD_ERRORS = (ValueError, TypeError, KeyError, ImportError, OSError, AttributeError)


def build(board, config=None):
    """hal.build()'s work; see there."""
    config = config or {}
    board = merged_board(board, config)
    hw = Hardware(board.get("name", "?"), board)
    sim = bool(board.get("sim"))
    try:
        if sim:
            from hal.sim import SimNetwork

            hw.network = SimNetwork(config)
        else:
            from hal.network import Network

            hw.network = Network(config.get("wifi") or {})
    except _BUILD_ERRORS as e:
        from hal.standin import NoNetwork

        hw.errors.append("network: " + _describe(e))
        hw.network = NoNetwork(_describe(e))
    try:
        if sim:
            from hal.sim import SimSystem

            hw.system = SimSystem(config)
        else:
            from hal.mcu import MCUSystem

            hw.system = MCUSystem()
    except _BUILD_ERRORS as e:
        hw.errors.append("system: " + _describe(e))
        from hal.sim import SimSystem

        hw.system = SimSystem(config)
    try:
        hw.led = _led(board)
    except _BUILD_ERRORS as e:
        hw.errors.append("led: " + _describe(e))
        from hal.led import NullLED

        hw.led = NullLED()
    cache = {}  # type: dict
    for name in board.get("sensors") or ():
        try:
            s = _sensor(hw, board, config, name, cache)
        except _BUILD_ERRORS as e:
            hw.errors.append(name + ": " + _describe(e))
            from hal.standin import FailedSensor

            s = FailedSensor(name, _describe(e))
        if s is None:
            hw.errors.append(name + ": unknown sensor driver")
        else:
            hw.sensors.append(s)
    return hw
