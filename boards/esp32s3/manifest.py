# Frozen firmware for the esp32s3 board: MicroPython's esp32 port, BOARD=ESP32_GENERIC_S3.
# The port's own modules, then the MQTT client, the HAL, the node application and this
# board's pin table are compiled into flash, so their code takes no heap. Paths are
# relative to this file. How to build and flash: docs/firmware.md, "Frozen firmware".
# config.json, boot.py and main.py stay on the board's filesystem: a frozen main.py runs
# before the filesystem's and could not be replaced or removed there.
# ruff: noqa: F821 -- include(), package() and module() come from MicroPython's makemanifest
# type: ignore
include("$(PORT_DIR)/boards/manifest.py")

# opt=1 (mpy-cross -O1) keeps line numbers in tracebacks: frozen bytecode stays in flash,
# so they cost no heap (make deploy's .mpy files leave them out).
package("mote", base_path="../../lib", opt=1)
package("hal", base_path="../../lib", opt=1)
package("app", base_path="../../firmware", opt=1)
# Imported as `board`. A /board.py on the filesystem still wins: sys.path is
# ['', '.frozen', '/lib'], and '' (the root folder) comes first.
module("board.py", opt=1)
