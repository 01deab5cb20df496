# Stand-in for the device-only `machine` module (mqtt_as only needs unique_id) on the unix port.


def unique_id():
    return b"\x6d\x6f\x74\x65\x00\x01"
