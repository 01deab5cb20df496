# hal.led: the status LED's interface, and the LED of a board without one. Layer: lib/hal.
# The drivers are modules of their own, so a board loads only the one it has: a GPIO in
# hal.pinled, a one-pixel NeoPixel in hal.pixel; the host board's twin is hal.sim.SimLED.


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
