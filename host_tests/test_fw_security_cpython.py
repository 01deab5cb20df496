# The locked-down broker of docs/security.md, for real: mosquitto runs the configuration
# and ACL blocks taken from that page (only paths and the port replaced, logging added),
# the node runs on the MicroPython unix port with its own account over TLS, and paho-mqtt
# clients play the operator, another device and an anonymous stranger.
import json
import os
import subprocess
import sys
import threading
import time

import broker as broker_mod
import pytest

import support

paho = pytest.importorskip("paho.mqtt.client")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOC = os.path.join(ROOT, "docs", "security.md")
MOTE_CLI = os.path.join(ROOT, "tools", "mote-cli")

NODE, NODE_PW = "secnode1", "node-pass-1"  # letters and digits: the HA pattern rule matches
OTHER, OTHER_PW = "secnode2", "node-pass-2"
OPERATOR, OPERATOR_PW = "operator", "operator-pass"
USERS = {NODE: NODE_PW, OTHER: OTHER_PW, OPERATOR: OPERATOR_PW, "homeassistant": "ha-pass"}


FIRMWARE_DOC = os.path.join(ROOT, "docs", "firmware.md")


def doc_block(name, path=DOC):
    """The text of the fenced block that follows the `<!-- name: ... -->` marker line in
    a doc (docs/security.md by default): what a reader copies."""
    with open(path) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("<!-- %s:" % name):
            assert lines[i + 1].startswith("```"), "no code block after the %s marker" % name
            end = lines.index("```", i + 2)
            return "\n".join(lines[i + 2 : end]) + "\n"
    raise AssertionError("%s has no <!-- %s: --> block" % (os.path.basename(path), name))


# What a failed wait shows besides the messages: callables giving the node's console and
# the broker's log (registered by the fixtures that start them).
_CONTEXT = []


def _explain():
    return "".join("\n--- %s:\n%s" % (name, fn()) for name, fn in _CONTEXT)


def _replace(text, old, new):
    assert old in text, "the doc's block no longer has %r" % old
    return text.replace(old, new)


class DocBroker(broker_mod.Broker):
    """mosquitto with a configuration block from the docs, only paths and the port
    replaced: replace(self) gives the (old, new) pairs, with the doc's listener becoming
    self.port. plain=True adds a test-only anonymous listener on self.plain_port to watch
    from. users: the password file."""

    def __init__(self, workdir, conf, replace, users=None, plain=False):
        self.doc_conf = conf
        self.replace = replace
        self.plain = plain
        super().__init__(workdir=workdir, users=users or {"unused": "unused"}, tls=False)

    @property
    def plain_port(self):
        return self.auth_port  # allocated by Broker, unused by this configuration

    def ports(self):
        return [self.port] + ([self.plain_port] if self.plain else [])

    def _write_conf(self):
        text = self.doc_conf
        for old, new in self.replace(self):
            text = _replace(text, old, new)
        # Test additions only: where the log goes, and no privilege drop when run as root.
        extra = [
            "log_dest file %s" % self.log_path,
            "log_type all",
            "connection_messages true",
            "persistence false",
        ]
        if os.geteuid() == 0:
            import pwd

            extra.append("user %s" % pwd.getpwuid(os.geteuid()).pw_name)
        tail = []
        if self.plain:
            tail = ["", "listener %d %s" % (self.plain_port, self.host), "allow_anonymous true"]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(extra) + "\n" + text + "\n".join(tail) + "\n")


def locked_down_broker(workdir, certs):
    """docs/security.md's mote.conf and mote.acl: one TLS listener (port), USERS."""
    os.makedirs(workdir, exist_ok=True)
    acl_path = os.path.join(workdir, "mote.acl")
    with open(acl_path, "w") as f:
        f.write(doc_block("mote.acl"))

    def replace(b):
        return (
            ("/etc/mosquitto/mote.passwd", b.passwd_path),
            ("/etc/mosquitto/mote.acl", acl_path),
            ("/etc/mosquitto/certs/ca.pem", certs.ca_cert),
            ("/etc/mosquitto/certs/server.pem", certs.server_cert),
            ("/etc/mosquitto/certs/server.key", certs.server_key),
            ("\nlistener 8883\n", "\nlistener %d %s\n" % (b.port, b.host)),
        )

    return DocBroker(workdir, doc_block("mote.conf"), replace, users=USERS)


class Client:
    """A paho-mqtt client over TLS (ca) to the locked-down broker; collects what it receives
    as (topic, payload, retain). connack: the CONNACK reason (refused or not)."""

    def __init__(self, port, ca, user=None, password=None, client_id="", topics=()):
        self.msgs = []
        self.cv = threading.Condition()
        self.topics = list(topics)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.connack = None
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id or "t-%d-%d" % (os.getpid(), id(self)),
        )
        if user:
            self.c.username_pw_set(user, password)
        if ca:  # None: plain TCP
            self.c.tls_set(ca_certs=ca)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        assert self.connected.wait(5), "no CONNACK"
        if self.topics and not self.connack.is_failure:
            assert self.subscribed.wait(5), "no SUBACK"

    def _on_connect(self, c, userdata, flags, reason, props=None):
        if self.connack is None:
            self.connack = reason
        if reason.is_failure:
            c.disconnect()  # no reconnect loop for a refused login
        elif self.topics:
            c.subscribe([(t, 1) for t in self.topics])
        self.connected.set()

    def _on_message(self, c, userdata, msg):
        with self.cv:
            self.msgs.append((msg.topic, bytes(msg.payload), msg.retain))
            self.cv.notify_all()

    def publish(self, topic, payload, retain=False):
        """Publish at QoS 1 and wait for the broker's PUBACK (sent also when the ACL
        drops the message)."""
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        assert info.is_published()

    def wait(self, pred, timeout_s=8.0):
        deadline = time.monotonic() + timeout_s
        with self.cv:
            while True:
                v = pred(self.msgs)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [m[:2] for m in self.msgs][-12:]
                    raise AssertionError("timed out; got %r%s" % (got, _explain()))
                self.cv.wait(left)

    def on(self, suffix):
        with self.cv:
            return [m for m in self.msgs if m[0].endswith(suffix)]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture(scope="module")
def locked(certs, tmp_path_factory):
    b = locked_down_broker(str(tmp_path_factory.mktemp("locked")), certs)
    b.start()
    opened = [line for line in b.log().splitlines() if "listen socket on port" in line]
    # the doc's listener, and no other (no plain default listener on 1883)
    assert opened and all(line.endswith(" %d." % b.port) for line in opened), opened
    explain = ("locked-down mosquitto's log", lambda: b.log_tail(20))
    _CONTEXT.append(explain)
    yield b
    _CONTEXT.remove(explain)
    b.stop()


@pytest.fixture
def clients(locked, certs):
    made = []

    def make(user=None, password=None, **kw):
        c = Client(locked.port, certs.ca_cert, user, password, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def start_node(mp, workdir, cfg):
    """The firmware on MicroPython, as test_fw_e2e_cpython's Node runs it, plus the unix
    port's frozen modules on the path: they hold ssl, for TLS to the broker."""
    from test_fw_e2e_cpython import HEAPSIZE, Node

    class TLSNode(Node):
        def __init__(self, mp, workdir, cfg):
            self.dir = workdir
            os.makedirs(workdir, exist_ok=True)
            self.config_path = os.path.join(workdir, "config.json")
            cfg.setdefault("sim", {}).setdefault("rtc_file", os.path.join(workdir, "rtc.bin"))
            with open(self.config_path, "w") as f:
                json.dump(cfg, f)
            path = [os.path.join(ROOT, p) for p in ("firmware", "lib", "boards/host")]
            env = dict(os.environ, MICROPYPATH=":".join(path + [".frozen"]))
            self.lines = []
            main = os.path.join(ROOT, "firmware", "main.py")
            self.proc = subprocess.Popen(
                [mp, "-X", "heapsize=" + HEAPSIZE, main, self.config_path],
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            threading.Thread(target=self._pump, daemon=True).start()

    return TLSNode(mp, workdir, cfg)


@pytest.fixture(scope="module")
def node(locked, certs, micropython_bin, tmp_path_factory):
    """The node on MicroPython, logged in with its own account over TLS; module-wide."""
    n = start_node(
        micropython_bin,
        str(tmp_path_factory.mktemp("secnode")),
        {
            "broker": {
                "host": "127.0.0.1",
                "port": locked.port,
                "user": NODE,
                "password": NODE_PW,
                "tls": True,
                "ca": certs.ca_cert_der,
                "keepalive_s": 10,
            },
            "device_id": NODE,
            "interval_s": 1,
            "watchdog_s": 30,
            "backoff_max_s": 2,
        },
    )
    explain = ("%s's console" % NODE, lambda: "\n".join(n.lines[-20:]))
    _CONTEXT.append(explain)
    yield n
    _CONTEXT.remove(explain)
    n.stop()
    if n.proc.returncode not in (0, -2, -9, None):
        print(n.log())


def _operator(clients):
    return clients(OPERATOR, OPERATOR_PW, topics=["mote/%s/#" % NODE, "homeassistant/#"])


def _reply(peer, name, cid, timeout_s=8.0):
    def find(msgs):
        for t, p, _ in msgs:
            if t == "mote/%s/reply/%s" % (NODE, name):
                r = json.loads(p)
                if r.get("id") == cid:
                    return r
        return None

    return peer.wait(find, timeout_s)


def _status_flips(peer):
    return [p for t, p, retain in peer.msgs if t.endswith("/status") and not retain]


def test_the_doc_blocks_lock_the_broker_down():
    conf, acl = doc_block("mote.conf"), doc_block("mote.acl")
    for line in (
        "allow_anonymous false",
        "use_username_as_clientid true",
        "password_file /etc/mosquitto/mote.passwd",
        "acl_file /etc/mosquitto/mote.acl",
        "listener 8883",
    ):
        assert line in conf.split("\n"), line
    assert "pattern read mote/%u/cmd/#" in acl and "pattern write mote/%u/#" in acl
    assert "topic read #" not in acl.split("user operator")[0]  # only the operator reads all


def test_the_node_works_normally_with_its_own_account(node, clients, certs, locked):
    op = _operator(clients)
    op.wait(lambda m: len(op.on("/telemetry")) >= 2)
    assert [p for t, p, _ in op.msgs if t.endswith("/status")][-1] == b"online"
    reading = json.loads(op.on("/telemetry")[-1][1])
    assert reading["seq"] >= 1 and "temperature_c" in reading
    # its Home Assistant discovery topics are allowed too (retained)
    op.wait(lambda m: any(t.startswith("homeassistant/switch/mote_%s/" % NODE) for t, *_ in m))
    # a command from the operator account, sent with tools/mote-cli, is answered
    env = dict(os.environ, MOTE_USER=OPERATOR, MOTE_PASSWORD=OPERATOR_PW)
    r = subprocess.run(
        [sys.executable, MOTE_CLI, "--port", str(locked.port), "--cafile", certs.ca_cert]
        + ["cmd", NODE, "ping", "-c"],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pong"] is True
    assert OPERATOR_PW not in r.stdout + r.stderr
    assert node.alive()


def test_another_device_cannot_command_the_node(node, clients):
    op = _operator(clients)
    op.wait(lambda m: op.on("/telemetry"))
    op.publish("mote/%s/cmd/led" % NODE, json.dumps({"id": "op-1"}))
    before = _reply(op, "led", "op-1")["led"]
    other = clients(OTHER, OTHER_PW)
    for name, arg in (("led", "toggle"), ("reboot", None), ("config", {"interval_s": 7})):
        body = {"id": "evil-" + name}
        if arg is not None:
            body["arg"] = arg
        other.publish("mote/%s/cmd/%s" % (NODE, name), json.dumps(body))
    # The broker has dropped those (each was acknowledged); what the operator sends now
    # is answered, and shows nothing of them ran.
    op.publish("mote/%s/cmd/led" % NODE, json.dumps({"id": "op-2"}))
    assert _reply(op, "led", "op-2")["led"] == before
    replies = [json.loads(p).get("id") for t, p, _ in op.msgs if "/reply/" in t]
    assert not [i for i in replies if str(i).startswith("evil-")], replies
    assert b"offline" not in _status_flips(op)
    assert "rebooting" not in node.log() and "config changed" not in node.log()
    assert node.alive()


def test_another_device_cannot_read_or_spoof_the_nodes_topics(node, clients):
    other = clients(OTHER, OTHER_PW, topics=["mote/%s/#" % NODE, "mote/#", "#"])
    other.publish("mote/%s/status" % NODE, b"offline", retain=True)
    other.publish("mote/%s/telemetry" % NODE, b'{"temperature_c": 99, "seq": 0}')
    other.publish("mote/%s/reply/ping" % NODE, b'{"ok": true, "id": "fake"}')
    op = _operator(clients)
    n = len(op.on("/telemetry"))
    op.wait(lambda m: len(op.on("/telemetry")) >= n + 2)
    assert other.msgs == []  # nothing at all, though the node published meanwhile
    assert [p for t, p, retain in op.msgs if t.endswith("/status") and retain] == [b"online"]
    assert all(json.loads(p)["seq"] > 0 for t, p, _ in op.on("/telemetry"))
    assert not [p for t, p, _ in op.msgs if b"fake" in p]


def test_nobody_without_the_nodes_password_takes_its_client_id(node, clients, locked):
    op = _operator(clients)
    op.wait(lambda m: op.on("/telemetry"))
    for cid in ("mote-" + NODE, NODE):
        stranger = clients(client_id=cid)  # no login at all
        assert stranger.connack.is_failure
        guess = clients(NODE, "wrong-password", client_id=cid)
        assert guess.connack.is_failure
        other = clients(OTHER, OTHER_PW, client_id=cid)  # logged in: its own id is used
        assert not other.connack.is_failure
    n = len(op.on("/telemetry"))
    op.wait(lambda m: len(op.on("/telemetry")) >= n + 2)
    assert _status_flips(op) == [], _status_flips(op)
    kicked = [
        line
        for line in locked.log().splitlines()
        if "already connected, closing old connection" in line and NODE in line
    ]
    assert kicked == []
    op.publish("mote/%s/cmd/ping" % NODE, json.dumps({"id": "op-ping"}))
    assert _reply(op, "ping", "op-ping")["ok"] is True
    assert node.alive()


def test_the_doc_block_reader_finds_nothing_that_is_not_there():
    e = support.raises(AssertionError, doc_block, "no-such-block")
    assert "no-such-block" in str(e)


# --- signed commands and mutual TLS (the session broker of brokerfix) ---------------------

CMD_KEY = "signed-key-0123456789"


def _load_cli():
    """tools/mote-cli as a module (its command_payload signs as the tool does)."""
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("mote_cli_security", MOTE_CLI)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(mod)
    return mod


def _plain_node(micropython_bin, tmp_path, port, dev, **cfg):
    base = {
        "broker": {"host": "127.0.0.1", "port": port, "keepalive_s": 10},
        "device_id": dev,
        "interval_s": 30,
        "watchdog_s": 30,
        "backoff_max_s": 2,
    }
    base.update(cfg)
    return start_node(micropython_bin, str(tmp_path / dev), base)


def _peer(port, topics):
    """A Client, plain and anonymous (the session broker's first listener)."""
    return Client(port, None, topics=topics)


def test_signed_commands_from_mote_cli_run_and_others_are_refused(
    broker, micropython_bin, tmp_path
):
    dev = "signed1"
    node = _plain_node(micropython_bin, tmp_path, broker.port, dev, cmd_key=CMD_KEY)
    peer = _peer(broker.port, ["mote/%s/#" % dev])
    try:
        peer.wait(lambda m: [p for t, p, _ in m if t.endswith("/status") and p == b"online"])

        def cli(*args, key=None):
            env = dict(os.environ)
            env.pop("MOTE_CMD_KEY", None)
            if key:
                env["MOTE_CMD_KEY"] = key
            r = subprocess.run(
                [sys.executable, MOTE_CLI, "--port", str(broker.port), "cmd", dev]
                + list(args)
                + ["-c", "--timeout", "5"],
                capture_output=True,
                text=True,
                timeout=20,
                env=env,
            )
            assert r.returncode in (0, 1), r.stderr
            return json.loads(r.stdout)

        assert cli("ping", key=CMD_KEY)["pong"] is True
        assert cli("led", "on", key=CMD_KEY)["led"] == "on"
        r = cli("led", "off")  # unsigned
        assert r["ok"] is False and "unsigned" in r["error"]
        r = cli("led", "off", key="not-the-key-0123456789")
        assert r["ok"] is False and "signature" in r["error"]
        assert cli("led", key=CMD_KEY)["led"] == "on"  # neither of those ran
        # a captured signed command, sent again: answered as before, not run again
        cli_mod = _load_cli()
        topic = "mote/%s/cmd/led" % dev
        captured = cli_mod.command_payload(topic, 4242, "toggle", CMD_KEY)
        peer.c.publish(topic, captured, qos=1)
        first = _reply_to(peer, dev, "led", 4242)
        assert first["led"] == "off"
        n = len([1 for t, p, _ in peer.msgs if t.endswith("/reply/led")])
        peer.c.publish(topic, captured, qos=1)
        peer.wait(lambda m: len([1 for t, p, _ in m if t.endswith("/reply/led")]) > n)
        assert cli("led", key=CMD_KEY)["led"] == "off"  # toggled once
        # signed with the key but older than the last command: refused
        stale = cli_mod.command_payload(topic, 4343, "toggle", CMD_KEY, now_ms=1767225600000)
        peer.c.publish(topic, stale, qos=1)
        r = _reply_to(peer, dev, "led", 4343)
        assert r["ok"] is False and "replayed" in r["error"]
        assert CMD_KEY not in node.log()
        assert node.alive()
    finally:
        peer.close()
        node.stop()


def _reply_to(peer, dev, name, cid):
    def find(msgs):
        for t, p, _ in msgs:
            if t == "mote/%s/reply/%s" % (dev, name) and json.loads(p).get("id") == cid:
                return json.loads(p)
        return None

    return peer.wait(find)


def test_the_mutual_tls_worked_example_connects_the_node(certs, micropython_bin, tmp_path):
    # docs/firmware.md, "Mutual TLS": step 1's openssl commands, step 3's deploy staging,
    # step 4's listener. (certs: only for its check that openssl and mosquitto are here.)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "deploy_t", os.path.join(ROOT, "tools", "deploy.py")
    )
    deploy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy)
    dev = "246f28a1b2c4"
    pki = tmp_path / "pki"
    pki.mkdir()
    script = _replace(doc_block("mtls.sh", FIRMWARE_DOC), "IP:192.168.1.10", "IP:127.0.0.1")
    r = subprocess.run(["bash", "-e", "-c", script], cwd=pki, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    def replace(b):
        return (
            ("listener 8884\n", "listener %d %s\n" % (b.port, b.host)),
            ("/etc/mosquitto/certs/ca.pem", str(pki / "ca.pem")),
            ("/etc/mosquitto/certs/server.pem", str(pki / "server.pem")),
            ("/etc/mosquitto/certs/server.key", str(pki / "server.key")),
        )

    conf = doc_block("mtls.conf", FIRMWARE_DOC)
    b = DocBroker(str(tmp_path / "broker"), conf, replace, plain=True).start()
    peer = node = stranger = None
    try:
        # step 2's config.json (files named relative to it), staged as make deploy does
        cfg = {
            "device_id": dev,
            "broker": {"host": "127.0.0.1", "port": b.port, "tls": True, "ca": "ca.pem"},
            "interval_s": 1,
            "watchdog_s": 30,
            "backoff_max_s": 2,
        }
        cfg["broker"].update(cert=dev + ".pem", key=dev + ".key")
        (pki / "config.json").write_text(json.dumps(cfg))
        stage = tmp_path / "stage"
        files = deploy.stage_config(str(pki / "config.json"), str(stage))
        assert sorted(files) == ["certs/ca.der", "certs/cert.der", "certs/key.der", "config.json"]
        staged = json.loads((stage / "config.json").read_text())
        for k in ("ca", "cert", "key"):  # the board's /certs/ is this test's stage/certs/
            staged["broker"][k] = str(stage) + staged["broker"][k]
        peer = _peer(b.plain_port, ["mote/%s/#" % dev])
        node = start_node(micropython_bin, str(tmp_path / "node"), staged)
        peer.wait(lambda m: [1 for t, p, _ in m if t.endswith("/telemetry")])
        assert [p for t, p, _ in peer.msgs if t.endswith("/status")][-1] == b"online"
        # the certificate's common name became the user name (use_identity_as_username)
        assert "u'%s'" % dev in b.log(), b.log_tail()
        # the same node without its certificate cannot connect to that listener
        del staged["broker"]["cert"], staged["broker"]["key"]
        staged["device_id"] = dev + "x"
        stranger = start_node(micropython_bin, str(tmp_path / "stranger"), staged)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "mqtt connect failed" not in stranger.log():
            time.sleep(0.1)
        assert "mqtt connect failed" in stranger.log(), stranger.log()
        assert "status online" not in stranger.log()
        assert node.alive() and stranger.alive()
    finally:
        for x in (peer,):
            if x is not None:
                x.close()
        for n in (node, stranger):
            if n is not None:
                n.stop()
        b.stop()
