# hal.led: status LEDs: a GPIO (active high or low), a one-pixel NeoPixel, or none.
# Layer: lib/hal. `machine` and `neopixel` are imported by the constructors only.


class LED:
    """on/off/toggle/value over one _set(lit) a subclass writes; value() is True when lit,
    whatever the polarity. This base alone is the LED of a board without one: it
    remembers its state and lights nothing."""

    def __init__(self):
        self._lit = False

    def _set(self, lit):
        self._lit = lit

    def on(self):
        self._set(True)

    def off(self):
        self._set(False)

    def toggle(self):
        self._set(not self._lit)

    def value(self):
        return self._lit


NullLED = LED


class PinLED(LED):
    """An LED on a GPIO; active_low for one wired to 3.3 V (lit when the pin is 0)."""

    def __init__(self, pin, active_low=False):
        import machine

        self._lit = False
        self._active_low = bool(active_low)
        self._pin = machine.Pin(pin, machine.Pin.OUT, value=1 if active_low else 0)

    def _set(self, lit):
        self._lit = lit
        self._pin.value(0 if lit == self._active_low else 1)


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
