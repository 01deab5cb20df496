# Fake `ds18x20` for host tests. roms: the sensors on the bus; script: what the next
# read_temp() calls do (a float, or an exception to raise, e.g. Exception("CRC error") as
# micropython-lib raises); scan_errors: errnos the next scan() calls raise.
roms = []
script = []
scan_errors = []
default = 21.5
conversions = 0


def reset_state():
    global default, conversions
    roms[:] = [bytearray(b"\x28\xff\x64\x1e\x0f\x00\x00\x5a")]
    del script[:]
    del scan_errors[:]
    default = 21.5
    conversions = 0


class DS18X20:
    def __init__(self, onewire):
        self.ow = onewire

    def scan(self):
        if scan_errors:
            raise OSError(scan_errors.pop(0))
        return [r for r in roms]

    def convert_temp(self):
        global conversions
        conversions += 1

    def read_temp(self, rom):
        if rom not in roms:
            raise OSError(5)
        step = script.pop(0) if script else default
        if isinstance(step, Exception):
            raise step
        return step
