# Fake `esp32` for host tests: the internal temperature sensor. An ESP32-S2/S3/C3 has
# mcu_temperature() (degC); the original ESP32 only raw_temperature() (degF): tests delete
# one of them to model a chip.
mcu_temperature_value = 41.5
raw_temperature_value = 128


def reset_state():
    global mcu_temperature_value, raw_temperature_value
    mcu_temperature_value = 41.5
    raw_temperature_value = 128
    g = globals()
    g["mcu_temperature"] = _mcu_temperature
    g["raw_temperature"] = _raw_temperature


def _mcu_temperature():
    return mcu_temperature_value


def _raw_temperature():
    return raw_temperature_value


mcu_temperature = _mcu_temperature
raw_temperature = _raw_temperature
