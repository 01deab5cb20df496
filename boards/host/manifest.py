# Frozen firmware for the host board: MicroPython's unix port (standard variant) with the
# MQTT client, the HAL (simulated twins included), the node application and this board's
# table compiled in, to measure the node's heap the way a frozen ESP32 build has it.
# Paths are relative to this file. How to build: docs/firmware.md, "Frozen firmware".
# ruff: noqa: F821 -- include(), package() and module() come from MicroPython's makemanifest
# type: ignore
include("$(PORT_DIR)/variants/manifest.py")  # what variants/standard/manifest.py has:
include("$(MPY_DIR)/extmod/asyncio")  # the common unix modules, and asyncio

# opt=1 (mpy-cross -O1) keeps line numbers in tracebacks: frozen bytecode stays in flash,
# so they cost no heap (make deploy's .mpy files leave them out).
package("mote", base_path="../../lib", opt=1)
package("hal", base_path="../../lib", opt=1)
package("app", base_path="../../firmware", opt=1)
module("board.py", opt=1)
