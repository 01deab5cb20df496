# Numbers the tests name: MQTT 3.1.1 packet types (section 2.2.1), and mote.session's
# states, events and publish() results as its opening comment lists them. mote keeps
# these as private consts (a public const is a module global: RAM on a board), so the
# tests spell them out here; test_codec_props_cpython checks they match mote's own.
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

DISCONNECTED = 0
CONNECTING = 1
CONNECTED = 2
ERROR = 3

EV_CONNACK = 1
EV_MESSAGE = 2
EV_PUBLISHED = 3
EV_SUBACK = 4
EV_UNSUBACK = 5
EV_PINGRESP = 6
EV_DEAD = 7
EV_DROPPED = 8

NO_ROOM = -1
NOT_CONNECTED = -2
