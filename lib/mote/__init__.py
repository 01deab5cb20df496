# mote: an allocation-free MQTT 3.1.1 client for MicroPython and CPython.
# `from mote import MQTTClient, MQTTException` (a drop-in superset of umqtt.simple/robust).
from mote.codec import MQTTException, ProtocolError  # noqa: F401


def __getattr__(name):
    # MQTTClient is loaded on first use, so `import mote.codec` alone stays small on a board.
    if name == "MQTTClient":
        from mote.client import MQTTClient

        return MQTTClient
    # MicroPython asks here before it imports a submodule (`from mote import snapshot`).
    try:
        __import__("mote." + name)
    except ImportError:
        raise AttributeError(name)
    return globals()[name]
