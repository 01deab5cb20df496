# Fakes of the ESP32 port's hardware modules (machine, network, esp32, dht, onewire,
# ds18x20, neopixel, ntptime) for host tests on both interpreters. They live in this
# package, not on sys.path, and enter sys.modules only between install() and uninstall():
#
#     with fakes.installed() as f:
#         f.machine.attach(0, 0x76, f.machine.I2CRegisters({0xD0: 0x60}))
#         hw = hal.build(BOARD, {})
#
# install() resets every fake's state, so tests do not see each other's scripts.
import sys

NAMES = ("machine", "network", "esp32", "dht", "onewire", "ds18x20", "neopixel", "ntptime")

_saved = {}
_missing = object()


def _load():
    from fakes import dht, ds18x20, esp32, machine, neopixel, network, ntptime, onewire

    return {
        "machine": machine,
        "network": network,
        "esp32": esp32,
        "dht": dht,
        "onewire": onewire,
        "ds18x20": ds18x20,
        "neopixel": neopixel,
        "ntptime": ntptime,
    }


class Fakes:
    """The installed fake modules as attributes: f.machine, f.network, ..."""

    def __init__(self, mods):
        for name in mods:
            setattr(self, name, mods[name])


def install(without=()):
    """Put fresh fakes into sys.modules (leaving out the names in without, to simulate a
    port that lacks them) and return them as a Fakes object."""
    if _saved:
        uninstall()
    mods = _load()
    for name in NAMES:
        mods[name].reset_state()
        _saved[name] = sys.modules.get(name, _missing)
        if name in without:
            if name in sys.modules:
                del sys.modules[name]
        else:
            sys.modules[name] = mods[name]
    return Fakes(mods)


def uninstall():
    """Restore sys.modules as it was before install()."""
    for name in _saved:
        old = _saved[name]
        if old is _missing:
            if name in sys.modules:
                del sys.modules[name]
        else:
            sys.modules[name] = old
    _saved.clear()


class installed:
    """Context manager around install() / uninstall()."""

    def __init__(self, without=()):
        self._without = without

    def __enter__(self):
        return install(self._without)

    def __exit__(self, *exc):
        uninstall()
        return False
