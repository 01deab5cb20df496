# app.commands: remote commands on <p>/<id>/cmd/<name>, answered on <p>/<id>/reply/<name>
# (layer: firmware). The payload is either a JSON object {"id": ..., "arg": ...} or the
# argument itself (plain text, or a JSON number/string). A command that carries an id is
# executed once: a redelivered QoS 1 copy gets the same reply again without running twice.
#
# RAM: the node imports this module for each batch of commands and forgets it again
# (app.node.Commands keeps the state: recent ids and counters), so its code is not in the
# heap while the node reads, publishes or reconnects. ping, read and led (Home
# Assistant's switch) are answered here; info lives in app.info and the rarely used
# interval, config and reboot in app.admin, each imported for one command.
import gc
import json

from app.log import log
from app.node import _describe
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


# Names answered here; info is in app.info, the others in app.admin.
NAMES = ("ping", "read", "interval", "led", "info", "reboot", "config")


def answer(node):
    """Answer every command queued in node._inbox on <p>/<id>/reply/<name>."""
    while node._inbox:
        node.hw.system.wdt_feed()
        name, payload, retained = node._inbox.pop(0)
        reply = handle(node, name, payload, retained)
        if len(reply) <= 160:
            log("command", name, "->", reply.decode())
        else:  # info, config: not copied once more for the console (heap)
            log("command", name, "->", len(reply), "bytes of reply")
        # Also while the link is down: at QoS 1 the client keeps the reply in its outbox
        # and sends it once reconnected (a command can arrive just before a loss).
        try:
            node._publish((node._reply_prefix + name).encode(), reply, False, 1)
        except OSError as e:
            log("reply failed:", _describe(e))


def handle(node, name, payload, retained=False):
    """Run command name with payload (bytes). Returns the reply as JSON bytes; never
    raises for a bad command or argument (those get {"ok": false, "error": ...}). An
    empty payload is no command, and a retained one never runs (the broker replaying
    an old message). With config.json's cmd_key the payload must be signed (app.sign).
    The state kept between commands is node.commands (app.node.Commands)."""
    cmds = node.commands
    cid = key = None  # key: set once the command may run (refusals are not remembered)
    try:
        if len(name) > _NAME_MAX:
            raise CommandError("command name too long")
        if not payload:
            raise CommandError("empty payload: not a command")
        if node.cfg["cmd_key"] is None:
            cid, arg = parse(payload)
        else:
            from app import sign

            try:
                cid, arg = sign.accept(cmds, name, payload, retained)
            finally:
                sign = None
                unload("app.sign")
        if retained:
            raise CommandError("retained command refused")
        if cid is not None:
            key = _key(name, cid)
            prev = find(cmds, key)
            if prev:
                cmds.duplicates += 1
                if prev[1] is not None:
                    return prev[1]
                return _encode({"ok": True, "duplicate": True}, cid)
        if name == "ping":
            reply = {"pong": True, "uptime_s": node.uptime_s()}
        elif name == "read":
            reading = node.read_now()
            reply = {"seq": reading["seq"], "reading": reading}
        elif name == "led":
            reply = _led(node, arg)
        elif name == "info":
            reply = _info(node, arg, cid)  # bytes: the whole reply, ok and id in it
        elif name in NAMES:
            reply = node._aside("admin", "run", name, arg)
        else:
            raise CommandError("unknown command: " + name)
        if type(reply) is dict:
            reply["ok"] = True
    except ValueError as e:  # CommandError and the validators' ValueErrors
        cmds.failed += 1
        if isinstance(e, CommandError) and cid is None and len(e.args) > 1:
            cid = e.args[1]  # rejected before it ran: the reply still carries the id
        reply = {"ok": False, "error": str(e.args[0]) if e.args else "bad argument"}
    except MemoryError:  # a cut-up heap: the sender still learns why, the node goes on
        reply = None
    cmds.handled += 1
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
        cmds.failed += 1
        gc.collect()
        out = _encode({"ok": False, "error": "out of memory"}, cid)
    if key is not None:
        _remember(cmds, key, out if len(out) <= _KEEP_REPLY else None)
    return out


# --- duplicate suppression -----------------------------------------------------------


def _key(name, cid):
    return name + "/" + (str(cid) if type(cid) is str else "#" + str(cid))


def find(cmds, key):
    """The remembered [key, reply bytes or None] for key, or None."""
    for e in cmds.recent:
        if e[0] == key:
            return e
    return None


def seen(cmds, name, cid):
    """Whether command name with id cid ran already (app.sign: a redelivery)."""
    return find(cmds, _key(name, cid)) is not None


def _remember(cmds, key, reply):
    if len(cmds.recent) >= _REMEMBER:
        cmds.recent.pop(0)
    cmds.recent.append([key, reply])


def restore_keys(cmds, keys):
    """Remember keys from before a reboot: their commands count as already executed."""
    for k in keys[-_REMEMBER:]:
        if type(k) is str and not find(cmds, k):
            _remember(cmds, k, None)


def _encode(reply, cid):
    if cid is not None:
        reply["id"] = cid
    return json.dumps(reply).encode()


# --- the commands ----------------------------------------------------------------------


def _led(node, arg):
    led = node.led
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
            node._publish((node.base + "/led").encode(), state.encode(), True, 1)
        except OSError:
            pass  # published again at the next connect (app.online)
    return {"led": state}


def _info(node, arg, cid):
    try:
        return node._aside("info", "info", arg, cid)
    finally:
        unload("mote.stats")  # info mqtt's client counters: loaded by stats(), not needed after
