# A real mosquitto for the broker tests (CPython only): test certificates made with the
# openssl command line, a config file written at test time, free loopback ports.
import atexit
import base64
import ctypes
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

HOST = "127.0.0.1"
WRONG_HOST = "wrong.invalid"  # the only name in certs.wronghost_cert (RFC 2606)
USER = "mote"
PASSWORD = "s3cret-pass"


def mosquitto_path():
    """The mosquitto binary, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"):
        if os.access(p, os.X_OK):
            return p
    return None


def missing_tools(tls=True):
    """A one-line reason why broker tests cannot run here, or None."""
    if not mosquitto_path():
        return "mosquitto not installed (Debian/Ubuntu: apt-get install mosquitto)"
    if tls and not shutil.which("openssl"):
        return "openssl command not installed"
    return None


def free_port(host=HOST):
    """A currently free TCP port on the loopback interface."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_port(port, host=HOST, timeout_s=10.0, alive=None):
    """Wait until (host, port) accepts a TCP connection; False on timeout or if alive()
    turns false first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[v3_wronghost]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.invalid
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
"""


_RUNNING = set()  # brokers to stop if the test process exits without stopping them


try:  # looked up here: between fork and exec only the plain C call is safe
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent():
    # Linux: mosquitto gets SIGTERM when the thread that started it dies (no orphans after
    # pytest is killed). Start brokers from the main thread (fixtures do).
    _prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM


@atexit.register
def _stop_all():
    for b in list(_RUNNING):
        b.stop()


class Certs:
    """Test PKI in one directory; every attribute is a file path. PEM everywhere, and a
    DER copy (`*_der`) of each certificate and key for MicroPython's ssl.

    ca_cert/ca_key: the test CA. server_cert/server_key: CN localhost, SAN DNS:localhost
    and IP:127.0.0.1. wronghost_cert/wronghost_key: signed by the CA, valid only for
    wrong.invalid. client_cert/client_key: a client certificate (CN mote-client) signed by
    the CA. other_ca_cert: an unrelated CA (the "wrong CA")."""

    def __init__(self, directory, key_type="ec"):
        self.dir = directory
        self.key_type = key_type
        os.makedirs(directory, exist_ok=True)
        self._cnf = os.path.join(directory, "openssl.cnf")
        with open(self._cnf, "w") as f:
            f.write(_OPENSSL_CNF)
        self._serial = 1
        self.ca_cert, self.ca_key = self._ca("ca", "mote test CA")
        self.other_ca_cert, self.other_ca_key = self._ca("other_ca", "unrelated test CA")
        self.server_cert, self.server_key = self._leaf("server", "localhost", "v3_server")
        self.wronghost_cert, self.wronghost_key = self._leaf(
            "wronghost", WRONG_HOST, "v3_wronghost"
        )
        self.client_cert, self.client_key = self._leaf("client", "mote-client", "v3_client")
        for name in ("ca_cert", "other_ca_cert", "server_cert", "client_cert"):
            setattr(self, name + "_der", self._der(getattr(self, name), "x509"))
        for name in ("client_key", "server_key"):
            setattr(self, name + "_der", self._der(getattr(self, name), "pkey"))

    def _run(self, *args):
        p = subprocess.run(
            ["openssl"] + list(args), cwd=self.dir, capture_output=True, text=True, timeout=30
        )
        if p.returncode:
            raise RuntimeError("openssl %s failed: %s" % (args[0], p.stderr.strip()))

    def _newkey(self):
        if self.key_type == "rsa":
            return ["-newkey", "rsa:2048"]
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]

    def _ca(self, name, cn):
        cert = os.path.join(self.dir, name + ".pem")
        key = os.path.join(self.dir, name + ".key")
        self._run(
            "req", "-x509", "-config", self._cnf, "-extensions", "v3_ca", *self._newkey(),
            "-nodes", "-keyout", key, "-out", cert, "-days", "3", "-subj", "/CN=" + cn,
        )  # fmt: skip
        return cert, key

    def _leaf(self, name, cn, ext):
        cert = os.path.join(self.dir, name + ".pem")
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        self._run(
            "req", "-new", "-config", self._cnf, *self._newkey(), "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + cn,
        )  # fmt: skip
        self._serial += 1
        self._run(
            "x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
            "-set_serial", str(self._serial), "-days", "3", "-extfile", self._cnf,
            "-extensions", ext, "-out", cert,
        )  # fmt: skip
        return cert, key

    def _der(self, pem, kind):
        out = pem.rsplit(".", 1)[0] + (".key.der" if kind == "pkey" else ".der")
        self._run(kind, "-in", pem, "-outform", "DER", "-out", out)
        return out

    def read(self, name):
        """The bytes of the file in attribute `name` (e.g. "ca_cert_der")."""
        with open(getattr(self, name), "rb") as f:
            return f.read()


def _hash_password(password):
    # mosquitto's "$6$" format: base64(salt) and base64(sha512(password + salt)).
    salt = os.urandom(12)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return "$6$%s$%s" % (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def write_password_file(path, users):
    """Write a mosquitto password file for {user: password}."""
    tool = shutil.which("mosquitto_passwd")
    if tool:
        open(path, "w").close()
        for user, pw in users.items():
            subprocess.run([tool, "-b", path, user, pw], check=True, capture_output=True)
        return
    with open(path, "w") as f:
        for user, pw in users.items():
            f.write("%s:%s\n" % (user, _hash_password(pw)))


class Broker:
    """One mosquitto with five loopback listeners, each on its own free port:
    port (plain, anonymous), tls_port (server cert for localhost/127.0.0.1),
    wronghost_port (TLS, cert valid only for wrong.invalid), mtls_port (TLS, client
    certificate required), auth_port (plain, password file, allow_anonymous false).
    stop() and start() again keep the ports; the log survives restarts (log())."""

    def __init__(
        self,
        workdir=None,
        certs=None,
        persistence=False,
        users=None,
        extra_conf=(),
        tls=True,
        tcp_nodelay=True,
    ):
        reason = missing_tools(tls)
        if reason:
            raise RuntimeError(reason)
        self.host = HOST
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="mote-broker-")
        os.makedirs(self.dir, exist_ok=True)
        self.persistence = persistence
        self.users = dict(users or {USER: PASSWORD})
        self.user, self.password = next(iter(self.users.items()))
        self.tls = tls
        if certs is None and tls:
            certs = Certs(os.path.join(self.dir, "pki"))
        self.certs = certs
        self.extra_conf = list(extra_conf)
        self.tcp_nodelay = tcp_nodelay  # False: mosquitto's own default (Nagle on)
        self.conf_path = os.path.join(self.dir, "mosquitto.conf")
        self.log_path = os.path.join(self.dir, "mosquitto.log")
        self.port = free_port()
        self.auth_port = free_port()
        self.tls_port = self.wronghost_port = self.mtls_port = None
        if tls:
            self.tls_port, self.wronghost_port, self.mtls_port = (free_port() for _ in "abc")
        self.passwd_path = os.path.join(self.dir, "passwd")
        self.proc = None
        self.starts = 0
        write_password_file(self.passwd_path, self.users)
        self._write_conf()

    def ports(self):
        """Every listener port, plain first."""
        return [
            p
            for p in (
                self.port,
                self.auth_port,
                self.tls_port,
                self.wronghost_port,
                self.mtls_port,
            )
            if p
        ]

    def _write_conf(self):
        c = self.certs
        lines = [
            "per_listener_settings true",
            "log_dest file %s" % self.log_path,  # flushed per line; stderr is buffered
            "log_type all",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
            "set_tcp_nodelay %s" % ("true" if self.tcp_nodelay else "false"),
            "max_queued_messages 100000",
            "persistence %s" % ("true" if self.persistence else "false"),
        ]
        if self.persistence:
            lines += ["persistence_location %s/" % self.dir, "autosave_interval 0"]
        if os.geteuid() == 0:
            # As root, mosquitto would switch to user "mosquitto", who cannot read our files.
            lines.append("user %s" % pwd.getpwuid(os.geteuid()).pw_name)
        lines += ["", "listener %d %s" % (self.port, HOST), "allow_anonymous true"]
        lines += [
            "",
            "listener %d %s" % (self.auth_port, HOST),
            "allow_anonymous false",
            "password_file %s" % self.passwd_path,
        ]
        if self.tls:
            for port, cert, key, require in (
                (self.tls_port, c.server_cert, c.server_key, False),
                (self.wronghost_port, c.wronghost_cert, c.wronghost_key, False),
                (self.mtls_port, c.server_cert, c.server_key, True),
            ):
                lines += [
                    "",
                    "listener %d %s" % (port, HOST),
                    "allow_anonymous true",
                    "cafile %s" % c.ca_cert,
                    "certfile %s" % cert,
                    "keyfile %s" % key,
                    "require_certificate %s" % ("true" if require else "false"),
                ]
        lines += [""] + self.extra_conf
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s=10.0):
        """Start mosquitto and wait until every listener accepts; raises RuntimeError with
        the log tail if it does not."""
        if self.running:
            return self
        with open(self.log_path, "a") as log:
            log.write("=== start %d ===\n" % (self.starts + 1))
            log.flush()
            self.proc = subprocess.Popen(
                [mosquitto_path(), "-c", self.conf_path],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                preexec_fn=_die_with_parent if _prctl is not None else None,
            )
        _RUNNING.add(self)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        for port in self.ports():
            left = max(0.1, deadline - time.monotonic())
            if not wait_port(port, timeout_s=left, alive=lambda: self.running):
                self.stop()
                raise RuntimeError(
                    "mosquitto did not listen on %d: %s" % (port, self.log_tail().strip())
                )
        return self

    def stop(self, timeout_s=5.0):
        """Stop mosquitto: SIGTERM (it saves persistence), then SIGKILL after timeout_s."""
        p, self.proc = self.proc, None
        _RUNNING.discard(self)
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout_s)

    def kill(self):
        """Stop mosquitto abruptly (SIGKILL: nothing saved)."""
        p, self.proc = self.proc, None
        _RUNNING.discard(self)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        """Everything mosquitto logged, across restarts."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, lines=30):
        return "\n".join(self.log().splitlines()[-lines:])

    def close(self):
        """Stop and remove the work directory (if this object made it)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<Broker %s plain=%s tls=%s mtls=%s auth=%s>" % (
            self.host,
            self.port,
            self.tls_port,
            self.mtls_port,
            self.auth_port,
        )
