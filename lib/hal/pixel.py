# hal.pixel: a status LED that is pixel 0 of a WS2812 strip. Layer: lib/hal. `machine` and
# `neopixel` are imported by the constructor only.
from hal.led import LED


class NeoPixelLED(LED):
    """Pixel 0 of a WS2812 strip (the RGB LED of the S3 and C6 DevKits); color is the
    (r, g, b) used for "on", dim by default: full white draws 60 mA and dazzles."""

    def __init__(self, pin, color=(0, 0, 24)):
        import machine
        import neopixel

        self._np = neopixel.NeoPixel(machine.Pin(pin, machine.Pin.OUT), 1)
        self._color = (int(color[0]), int(color[1]), int(color[2]))
        self._off = (0, 0, 0)
        self._set(False)

    def _set(self, lit):
        self._lit = lit
        self._np[0] = self._color if lit else self._off
        self._np.write()
