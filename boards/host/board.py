# The host board: the firmware on a PC (MicroPython unix port or CPython) with simulated
# WiFi, sensor, LED and system from hal.sim, set up by config["sim"]. Pure data.
BOARD = {
    "name": "host",
    "sim": True,  # network, system and LED are the hal.sim twins
    "led": {"sim": True},
    "i2c": None,
    "sensors": ["sim"],
    "defaults": {"interval_s": 10},
}
