# Fake `dht` (MicroPython's DHT11/DHT22 module) for host tests. script: what the next
# measure() calls do: a (temperature, humidity) tuple, or an OSError to raise. After the
# script, every measure() gives `default`.
script = []
default = (22.5, 41.0)
measures = 0


def reset_state():
    global default, measures
    del script[:]
    default = (22.5, 41.0)
    measures = 0


class DHTBase:
    def __init__(self, pin):
        self.pin = pin
        self._t = 0
        self._h = 0

    def measure(self):
        global measures
        measures += 1
        step = script.pop(0) if script else default
        if isinstance(step, Exception):
            raise step
        self._t, self._h = step

    def temperature(self):
        return self._t

    def humidity(self):
        return self._h


class DHT11(DHTBase):
    pass


class DHT22(DHTBase):
    pass
