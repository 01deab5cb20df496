# hal.standin: what hal.build() puts in place of a part whose driver could not be built
# (layer: lib/hal). Imported only then, so a board where everything works never loads it.
from hal.errors import NetworkError, SensorError


class FailedSensor:
    """Stands in for a sensor whose driver could not be built (bad pin, missing module):
    read() raises SensorError with the reason, so the firmware reports it like any other."""

    def __init__(self, name, why):
        self.name = name
        self._why = why

    def read(self):
        raise SensorError(self.name + ": not available", self._why)


class NoNetwork:
    """Stands in for a network that could not be built: never up."""

    def __init__(self, why):
        self._why = why

    def up(self, timeout_ms=15000, feed=None):
        raise NetworkError(19, "network: not available: " + self._why)

    def status_name(self):
        return "not available"

    def isconnected(self):
        return False

    def check(self):
        return False

    def rssi(self):
        return None

    def ip(self):
        return None

    def down(self):
        pass
