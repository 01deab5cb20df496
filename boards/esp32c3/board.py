# ESP32-C3 SuperMini (the small board with a USB-C socket and a blue LED). Pure data: see
# docs/hal-api.md and docs/hardware.md. The blue LED on GPIO8 is wired to 3V3, so it is lit
# when the pin is low. GPIO8 and GPIO9 (BOOT button) are strapping pins, so I2C uses 5/6.
BOARD = {
    "name": "esp32c3",
    "led": {"pin": 8, "active_low": True},
    "i2c": {"id": 0, "sda": 5, "scl": 6, "freq": 100_000},  # the C3 has one I2C controller
    "onewire": {"pin": 3},  # 4.7 kohm pull-up to 3V3
    "dht": {"pin": 4, "type": "dht22"},
    "sensors": ["sht4x", "mcu"],
    # Buffers twice a plain ESP32's (app.config's defaults): the C3's heap is larger than a plain
    # ESP32's (about 137 KB).
    "defaults": {"interval_s": 60, "broker.outbox_size": 2048, "offline_bytes": 4096},
}
