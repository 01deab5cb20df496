# app.commands: remote commands on <p>/<id>/cmd/<name>, answered on <p>/<id>/reply/<name>
# (layer: firmware). The payload is either a JSON object {"id": ..., "arg": ...} or the
# argument itself (plain text, or a JSON number/string). A command that carries an id is
# executed once: a redelivered QoS 1 copy gets the same reply again without running twice.
#
# RAM: ping, read and led (Home Assistant's switch) are answered here; info lives in
# app.info and the rarely used interval, config and reboot in app.admin, each imported
# for one command and forgotten again.
import gc
import json

from hal import unload
from mote.compat import const

# Ids remembered for duplicate suppression; each entry keeps its reply when that is at
# most _KEEP_REPLY bytes (an `info` reply is ~700: eight of them would cost 6 KB of heap).
_REMEMBER = const(8)
_KEEP_REPLY = const(256)
_NAME_MAX = const(32)
_ID_MAX = const(64)


class CommandError(ValueError):
    """A bad argument or an unknown command; args[0] is the reply's "error" text."""


def parse(payload):
    """(id, arg) from a command payload (bytes). id is None, a str or an int; arg is None
    (empty payload), a str, a number, or a JSON value from the envelope's "arg". Raises
    CommandError for a payload that is not UTF-8, broken JSON, or a bad envelope (its
    args[1] is the envelope's id when that could be read, for the reply)."""
    try:
        text = bytes(payload).decode()
    except UnicodeError:
        raise CommandError("payload is not UTF-8")
    text = text.strip()
    if not text:
        return None, None
    first = text[0]
    if first == "{" or first == "[" or first == '"' or first == "-" or "0" <= first <= "9":
        try:
            v = json.loads(text)
        except ValueError:
            if first == "{" or first == "[" or first == '"':
                raise CommandError("payload is not valid JSON")
            return None, text  # e.g. "-x" or "12abc": plain text after all
        if type(v) is dict:
            cid = v.get("id")
            if cid is not None and not (type(cid) is int or type(cid) is str):
                raise CommandError("id must be a string or an integer")
            if type(cid) is str and len(cid) > _ID_MAX:
                raise CommandError("id too long")
            for k in v:
                if k != "id" and k != "arg":  # the id is valid: the reply echoes it
                    raise CommandError(
                        "unknown field in command object: " + str(k)[:_NAME_MAX], cid
                    )
            return cid, v.get("arg")
        if type(v) is list:
            raise CommandError("expected an object, a number or text")
        return None, v
    return None, text


class Commands:
    """The command table. node supplies what the commands act on: uptime_s(), read_now(),
    led (hal LED), and what app.admin uses (set_interval(s), request_reboot(), cfg, raw,
    config_path, hw, ring, client, counters)."""

    NAMES = ("ping", "read", "interval", "led", "info", "reboot", "config")
    _HERE = ("ping", "read", "led")  # info is in app.info, the others in app.admin

    def __init__(self, node):
        self.node = node
        self._recent = []  # [key, reply bytes or None] oldest first, at most _REMEMBER
        self.handled = 0
        self.duplicates = 0
        self.failed = 0

    # --- duplicate suppression -------------------------------------------------------

    def _key(self, name, cid):
        return name + "/" + (str(cid) if type(cid) is str else "#" + str(cid))

    def _find(self, key):
        for e in self._recent:
            if e[0] == key:
                return e
        return None

    def _remember(self, key, reply):
        if len(self._recent) >= _REMEMBER:
            self._recent.pop(0)
        self._recent.append([key, reply])

    def recent_keys(self):
        """The remembered command keys (saved across a reboot or deep sleep)."""
        return [e[0] for e in self._recent]

    def restore_keys(self, keys):
        """Remember keys from before a reboot: their commands count as already executed."""
        for k in keys[-_REMEMBER:]:
            if type(k) is str and not self._find(k):
                self._remember(k, None)

    # --- dispatch --------------------------------------------------------------------

    def handle(self, name, payload, retained=False):
        """Run command name with payload (bytes). Returns the reply as JSON bytes; never
        raises for a bad command or argument (those get {"ok": false, "error": ...}). An
        empty payload is no command, and a retained one never runs (the broker replaying
        an old message). With config.json's cmd_key the payload must be signed (app.sign)."""
        cid = key = None  # key: set once the command may run (refusals are not remembered)
        try:
            if len(name) > _NAME_MAX:
                raise CommandError("command name too long")
            if not payload:
                raise CommandError("empty payload: not a command")
            if self.node.cfg["cmd_key"] is None:
                cid, arg = parse(payload)
            else:
                from app import sign

                try:
                    cid, arg = sign.accept(self, name, payload, retained)
                finally:
                    sign = None
                    unload("app.sign")
            if retained:
                raise CommandError("retained command refused")
            if cid is not None:
                key = self._key(name, cid)
                seen = self._find(key)
                if seen:
                    self.duplicates += 1
                    if seen[1] is not None:
                        return seen[1]
                    return self._encode({"ok": True, "duplicate": True}, cid)
            if name in self._HERE:
                reply = getattr(self, "_cmd_" + name)(arg)
            elif name == "info":
                reply = _info(self.node, arg, cid)  # bytes: the whole reply, ok and id in it
            elif name in self.NAMES:
                reply = _admin(self.node, name, arg)
            else:
                raise CommandError("unknown command: " + name)
            if type(reply) is dict:
                reply["ok"] = True
        except ValueError as e:  # CommandError and the validators' ValueErrors
            self.failed += 1
            if isinstance(e, CommandError) and cid is None and len(e.args) > 1:
                cid = e.args[1]  # rejected before it ran: the reply still carries the id
            reply = {"ok": False, "error": str(e.args[0]) if e.args else "bad argument"}
        except MemoryError:  # a cut-up heap: the sender still learns why, the node goes on
            reply = None
        self.handled += 1
        out = None
        if type(reply) is bytes:
            out = reply
        elif reply is not None:
            try:
                if cid is not None:
                    reply["id"] = cid
                out = json.dumps(reply)
                reply = None  # the dict goes first: at most two copies of a large reply (config)
                out = out.encode()
            except MemoryError:  # a large reply that found no room
                out = reply = None
        if out is None:
            self.failed += 1
            gc.collect()
            out = self._encode({"ok": False, "error": "out of memory"}, cid)
        if key is not None:
            self._remember(key, out if len(out) <= _KEEP_REPLY else None)
        return out

    def _encode(self, reply, cid):
        if cid is not None:
            reply["id"] = cid
        return json.dumps(reply).encode()

    # --- the commands ----------------------------------------------------------------

    def _cmd_ping(self, arg):
        return {"pong": True, "uptime_s": self.node.uptime_s()}

    def _cmd_read(self, arg):
        reading = self.node.read_now()
        return {"seq": reading["seq"], "reading": reading}

    def _cmd_led(self, arg):
        led = self.node.led
        if arg is not None:
            if type(arg) is not str:
                raise CommandError("led takes on, off or toggle")
            a = arg.strip().lower()
            if a == "on":
                led.on()
            elif a == "off":
                led.off()
            elif a == "toggle":
                led.toggle()
            else:
                raise CommandError("led takes on, off or toggle")
        state = "on" if led.value() else "off"
        if arg is not None:
            try:  # the state topic Home Assistant's switch follows, retained
                n = self.node
                n._publish((n.base + "/led").encode(), state.encode(), True, 1)
            except OSError:
                pass  # published again at the next connect (app.online)
        return {"led": state}


def _info(node, arg, cid):
    from app import info

    try:
        return info.info(node, arg, cid)
    finally:
        unload("app.info")
        unload("mote.stats")  # info mqtt's client counters: loaded by stats(), not needed after


def _admin(node, name, arg):
    from app import admin

    try:
        return admin.run(node, name, arg)
    finally:
        unload("app.admin")
