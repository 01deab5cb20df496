# Espressif ESP32-DevKitC (V4, ESP32-WROOM-32 / -32E). Pure data: see docs/hal-api.md and
# docs/hardware.md. The DevKitC has no user LED (only the power LED): wire one, with a
# 330 ohm resistor to GND, on GPIO2 (where the blue LED of "DOIT DevKit V1" clones sits).
BOARD = {
    "name": "esp32",
    "led": {"pin": 2, "active_low": False},
    "i2c": {"id": 0, "sda": 21, "scl": 22, "freq": 100_000},  # the Arduino-core defaults
    "onewire": {"pin": 4},  # 4.7 kohm pull-up to 3V3
    "dht": {"pin": 27, "type": "dht22"},  # not 15: a strapping pin (boot log output)
    "sensors": ["bme280", "mcu"],
    "defaults": {"interval_s": 60},
}
