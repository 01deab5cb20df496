# Fake `network` for host tests: one WLAN station with an access point that is in range or
# not, a password, and scripted association results. Status codes as on the ESP32 port.
STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204

ap_ssid = "home"
ap_password = "secret"
in_range = True
polls_to_connect = 2  # status() calls that answer CONNECTING before the result
script = []  # forced results of the next connect() calls, e.g. [STAT_NO_AP_FOUND]
hangs = 0  # how many next connect() calls stay CONNECTING forever
rssi_value = -61
_hostname = "espressif"
_wlans = {}


def reset_state():
    global ap_ssid, ap_password, in_range, polls_to_connect, rssi_value, _hostname, hangs
    hangs = 0
    ap_ssid = "home"
    ap_password = "secret"
    in_range = True
    polls_to_connect = 2
    del script[:]
    rssi_value = -61
    _hostname = "espressif"
    _wlans.clear()


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    _hostname = name
    return None


def WLAN(interface=STA_IF):
    """The same object for each interface, as on the ESP32 port."""
    w = _wlans.get(interface)
    if w is None:
        w = _wlans[interface] = _WLAN(interface)
    return w


class _WLAN:
    def __init__(self, interface):
        self.interface = interface
        self._active = False
        self._status = STAT_IDLE
        self._outcome = STAT_IDLE
        self._polls = 0
        self.connects = []  # (ssid, key) per connect()
        self.disconnects = 0
        self.static = None
        self.hostname_at_connect = None

    def active(self, v=None):
        if v is None:
            return self._active
        self._active = bool(v)
        if not v:
            self._status = STAT_IDLE
        return None

    def connect(self, ssid=None, key=None):
        if not self._active:
            raise OSError("STA must be active")
        self.connects.append((ssid, key))
        self.hostname_at_connect = _hostname
        if script:
            self._outcome = script.pop(0)
        elif not in_range or ssid != ap_ssid:
            self._outcome = STAT_NO_AP_FOUND
        elif key != ap_password:
            self._outcome = STAT_WRONG_PASSWORD
        else:
            self._outcome = STAT_GOT_IP
        self._status = STAT_CONNECTING
        self._polls = polls_to_connect
        global hangs
        if hangs > 0:
            hangs -= 1
            self._polls = 1 << 30

    def _advance(self):
        if self._status == STAT_CONNECTING:
            self._polls -= 1
            if self._polls <= 0:
                self._status = self._outcome

    def status(self, param=None):
        if param == "rssi":
            if self._status != STAT_GOT_IP:
                raise OSError("STA must be connected")
            return rssi_value
        if param is not None:
            raise ValueError("unknown status param")
        self._advance()
        return self._status

    def isconnected(self):
        return self._status == STAT_GOT_IP

    def disconnect(self):
        self.disconnects += 1
        if self._status != STAT_IDLE:
            self._status = STAT_IDLE

    def drop(self):
        """Test helper: the AP went away (a connected station loses its link)."""
        self._status = STAT_BEACON_TIMEOUT

    def ifconfig(self, cfg=None):
        if cfg is None:
            if self.static:
                return self.static
            if self._status == STAT_GOT_IP:
                return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        self.static = tuple(cfg)
        return None

    def config(self, *args, **kwargs):
        if args and args[0] == "mac":
            return b"\x24\x0a\xc4\x12\x34\x56"
        return None
