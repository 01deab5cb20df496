# hal.pinled: a status LED on a GPIO, active high or low. Layer: lib/hal. `machine` is
# imported by the constructor only.
from hal.led import LED


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
