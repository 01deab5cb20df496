# mote: an allocation-free MQTT 3.1.1 client for MicroPython and CPython.
# `from mote import MQTTClient, MQTTException` (a drop-in superset of umqtt.simple/robust).
from mote.codec import MQTTException, ProtocolError  # noqa: F401
