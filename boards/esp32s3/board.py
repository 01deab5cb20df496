# Espressif ESP32-S3-DevKitC-1. Pure data: see docs/hal-api.md and docs/hardware.md.
# The on-board RGB LED (WS2812) is on GPIO48 on board v1.0 and on GPIO38 on v1.1 (printed
# on the silkscreen): this file is for v1.0; on a v1.1 set "board": {"led": {"neopixel": 38}}
# in config.json.
BOARD = {
    "name": "esp32s3",
    "led": {"neopixel": 48},
    "i2c": {"id": 0, "sda": 8, "scl": 9, "freq": 100_000},  # the Arduino-core defaults
    "onewire": {"pin": 4},  # 4.7 kohm pull-up to 3V3
    "dht": {"pin": 5, "type": "dht22"},
    "sensors": ["bme280", "mcu"],
    # Buffers twice a plain ESP32's (app.config's defaults): the S3 has more RAM than a plain
    # ESP32 (512 KB SRAM, often PSRAM).
    "defaults": {"interval_s": 60, "broker.outbox_size": 2048, "offline_bytes": 4096},
}
