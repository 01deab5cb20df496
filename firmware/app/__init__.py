# app: the mote sensor-node application (layer: firmware). node.main() runs it.
VERSION = "0.1.0"
