# hal: the hardware abstraction. build(BOARD, config) gives the firmware a network, its
# sensors, an LED and the system, real on an ESP32 and simulated on the host board.
# Layer: lib/hal. Importing hal touches no hardware: drivers import machine & co. when built.
#
# RAM: on a board every imported .mpy module stays in the heap, so what runs once lives in
# modules of its own that are forgotten after use (unload): build() in hal.builder, the
# stand-ins for parts that failed in hal.standin, NTP in hal.ntp.
from hal.errors import DeepSleep, NetworkError, Reboot, SensorError

__all__ = ["build", "Hardware", "SensorError", "NetworkError", "Reboot", "DeepSleep", "unload"]


class Hardware:
    """What build() returns: name, network, sensors, led, system, errors (list of str),
    board (the merged board dict)."""

    def __init__(self, name, board):
        self.name = name
        self.board = board
        self.network = None
        self.sensors = []
        self.led = None
        self.system = None
        self.errors = []


def unload(name):
    """Forget module name (e.g. "hal.builder") so that its code and globals can be
    collected once nothing else refers to them; the next import loads it afresh. For code
    that runs at boot or rarely: an imported module's bytecode, functions and globals stay
    in the heap as long as it is in sys.modules (or its package) or one of its functions
    or classes is alive. Interned names stay either way."""
    import sys

    mod = sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg) if pkg else None
    if mod is not None and parent is not None and getattr(parent, attr, None) is mod:
        delattr(parent, attr)


def build(board, config=None):
    """Build the hardware a board dict describes (see docs/hal-api.md). Never raises for
    hardware problems: they go to hw.errors, and a missing chip shows in read(). The
    building code (hal.builder) is forgotten again afterwards."""
    from hal import builder

    try:
        return builder.build(board, config)
    finally:
        unload("hal.builder")
