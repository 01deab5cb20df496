# Fake `machine` for host tests: Pin, I2C over scripted devices (register maps and command
# devices), WDT, RTC, unique_id, reset, deepsleep, reset_cause. ESP32 numbering.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


class ResetCalled(Exception):
    """machine.reset() was called (a device would restart)."""


class DeepSleepCalled(Exception):
    """machine.deepsleep(ms) was called."""


def reset_state():
    global unique_id_value, reset_cause_value, last_wdt
    _buses.clear()
    pins.clear()
    rtc_memory[:] = b""
    unique_id_value = b"\x24\x0a\xc4\x12\x34\x56"
    reset_cause_value = PWRON_RESET
    last_wdt = None


_buses = {}  # I2C id -> {addr: device}
pins = {}  # GPIO number -> the last Pin made for it
rtc_memory = bytearray()
unique_id_value = b""
reset_cause_value = PWRON_RESET
last_wdt = None
MAX_GPIO = 48  # the S3's highest GPIO; a higher number is "invalid pin" like on a board


def attach(bus_id, addr, device):
    """Put device (I2CRegisters or I2CCommands) on I2C bus bus_id at addr."""
    _buses.setdefault(bus_id, {})[addr] = device
    return device


def unique_id():
    return unique_id_value


def reset():
    raise ResetCalled()


def deepsleep(ms=0):
    raise DeepSleepCalled(ms)


def reset_cause():
    return reset_cause_value


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        if not isinstance(id, int) or not 0 <= id <= MAX_GPIO:
            raise ValueError("invalid pin")
        self.id = id
        self.mode = mode
        self.pull = pull
        self._v = 0 if value is None else (1 if value else 0)
        self.writes = []  # every value written, in order
        pins[id] = self

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        self.writes.append(self._v)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class I2CRegisters:
    """A chip with 256 auto-incrementing 8-bit registers (BME280 style). fail: errnos to
    raise, one per bus operation, before the device answers normally again."""

    def __init__(self, regs=None):
        self.mem = bytearray(256)
        if regs:
            for reg in regs:
                self.load(reg, regs[reg])
        self.writes = []  # (reg, bytes) in order
        self.fail = []

    def load(self, reg, data):
        if isinstance(data, int):
            data = bytes([data])
        for i in range(len(data)):
            self.mem[(reg + i) & 0xFF] = data[i]

    def read_mem(self, reg, buf):
        for i in range(len(buf)):
            buf[i] = self.mem[(reg + i) & 0xFF]

    def write_mem(self, reg, data):
        self.writes.append((reg, bytes(data)))
        self.load(reg, bytes(data))

    def write(self, data):
        self.write_mem(data[0], data[1:])

    def read(self, buf):
        raise OSError(5)  # a register chip needs a register address first


class I2CCommands:
    """A chip driven by command writes followed by reads (SHT4x style): responses maps the
    first command byte to the bytes the next read returns (a list: one per command, then
    the last one repeats). fail: errnos to raise, one per bus operation."""

    def __init__(self, responses):
        self.responses = responses
        self.commands = []
        self.pending = b""
        self.fail = []

    def write(self, data):
        self.commands.append(bytes(data))
        r = self.responses.get(data[0], b"")
        if isinstance(r, list):
            r = r.pop(0) if len(r) > 1 else r[0]
        self.pending = r

    def read(self, buf):
        for i in range(len(buf)):
            buf[i] = self.pending[i] if i < len(self.pending) else 0xFF

    def read_mem(self, reg, buf):
        raise OSError(5)

    def write_mem(self, reg, data):
        raise OSError(5)


class I2C:
    def __init__(self, id, *, scl=None, sda=None, freq=400_000, timeout=50_000):
        if id not in (0, 1):
            raise ValueError("invalid I2C peripheral")
        self.id = id
        self.scl = scl
        self.sda = sda
        self.freq = freq
        self.devices = _buses.setdefault(id, {})

    def _dev(self, addr):
        d = self.devices.get(addr)
        if d is None:
            raise OSError(19)  # ENODEV: nobody acknowledged the address (ESP32 port)
        if d.fail:
            raise OSError(d.fail.pop(0))
        return d

    def scan(self):
        return sorted(self.devices)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self._dev(addr).read_mem(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._dev(addr).write_mem(memaddr, buf)

    def writeto(self, addr, buf, stop=True):
        self._dev(addr).write(buf)
        return 1

    def readfrom_into(self, addr, buf, stop=True):
        self._dev(addr).read(buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf)
        return bytes(buf)


class WDT:
    def __init__(self, id=0, timeout=5000):
        global last_wdt
        self.timeout = timeout
        self.feeds = 0
        last_wdt = self

    def feed(self):
        self.feeds += 1


class RTC:
    def memory(self, data=None):
        if data is None:
            return bytes(rtc_memory)
        if len(data) > 2048:
            raise ValueError("buffer too long")
        rtc_memory[:] = data
        return None
