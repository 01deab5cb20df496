# Stand-in for the device-only `network` module, so mqtt_as runs on the unix port in the
# benchmark: a WiFi station that is always up (the host's loopback needs no WiFi).
STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010


class WLAN:
    PM_NONE = 0

    def __init__(self, interface=STA_IF):
        self._active = False

    def active(self, *state):
        if state:
            self._active = bool(state[0])
        return self._active

    def connect(self, *args, **kwargs):
        pass

    def disconnect(self):
        pass

    def isconnected(self):
        return True

    def status(self, *args):
        return STAT_GOT_IP

    def config(self, *args, **kwargs):
        return None

    def ifconfig(self, *args):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
