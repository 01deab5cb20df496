# mote.tls: compat's TLS half, imported only when a connection uses TLS, so plain-TCP
# users never load it. MicroPython's mbedTLS and CPython's ssl differ in what they take
# (PEM support, the default verify mode, data vs file names): that difference lives here.
from mote.compat import MICROPYTHON

# ssl_params keys: mote's (files) and umqtt.simple's (data, passed to ssl.wrap_socket).
_KEYS = ("cafile", "cadata", "certfile", "keyfile", "cert", "key", "cert_reqs", "server_hostname")


def check(params):
    """Refuse an ssl_params key this module would ignore (a client certificate silently
    lost is a connection that fails far from its cause)."""
    for k in params:
        if k not in _KEYS:
            raise ValueError("unknown ssl_params key; known: " + ", ".join(_KEYS), k)


def wrap(tls, params, sock, host, warned, left_ms):
    """Wrap a connected non-blocking socket in TLS. The handshake is not done here: it
    runs inside the reads and writes that follow (each returns "would block" until it is
    done), so it never blocks the caller. tls: True (a context built from params) or the
    caller's context. Returns (tls socket, warned): warns once when the server is not
    verified. A port whose wrap_socket cannot defer the handshake does it here, bounded by
    left_ms (what is left of the attempt's deadline)."""
    if tls is True or not hasattr(tls, "wrap_socket"):
        ctx, verified = context(params)
    else:
        ctx = tls
        verified = verifies(ctx)
    if not verified and not warned:
        warned = True
        print("mote: WARNING: TLS without a CA: the server's identity is NOT verified")
    name = params.get("server_hostname", host)
    try:
        return ctx.wrap_socket(sock, server_hostname=name, do_handshake_on_connect=False), warned
    except TypeError:  # an older port: no do_handshake_on_connect
        sock.settimeout(max(1, left_ms) / 1000)
        sock = ctx.wrap_socket(sock, server_hostname=name)
        sock.setblocking(False)
        return sock, warned


def context(params):
    """An SSL context from ssl_params: cafile/cadata (the CA or CAs to verify the server,
    PEM bundle or DER), certfile/keyfile or umqtt's cert/key data (client certificate for
    mutual TLS), cert_reqs (umqtt's: overrides the verify mode). Returns (context,
    verified): verified is False when the server is not checked."""
    import ssl

    cafile = params.get("cafile")
    cadata = params.get("cadata")
    cert = params.get("cert") or (params.get("certfile") and _read(params["certfile"]))
    key = params.get("key") or (params.get("keyfile") and _read(params["keyfile"])) or cert
    reqs = params.get("cert_reqs")
    if cafile:
        cadata = _read(cafile)
    verified = bool(cadata) if reqs is None else reqs != ssl.CERT_NONE
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if MICROPYTHON:
        # mbedTLS parses PEM (a bundle: every certificate) where the port enables it; else
        # each certificate goes in as DER. Its default mode is CERT_NONE: set it always.
        if cadata:
            try:
                ctx.load_verify_locations(cadata=cadata)
            except (ValueError, OSError):
                for der in _der(cadata):  # no PEM parser in this port: one DER at a time
                    ctx.load_verify_locations(cadata=der)
        if cert:
            try:
                ctx.load_cert_chain(cert, key)
            except (ValueError, OSError):
                ctx.load_cert_chain(_der(cert)[0], _der(key)[0])
        # The ESP32 stubs lack verify_mode; the port has it (extmod's tls module).
        ctx.verify_mode = ssl.CERT_REQUIRED if verified else ssl.CERT_NONE  # type: ignore[attr-defined]
        return ctx, verified
    if cadata:
        if isinstance(cadata, (bytes, bytearray)) and not cadata.lstrip().startswith(b"-----"):
            ctx.load_verify_locations(cadata=bytes(cadata))  # DER
        else:
            ctx.load_verify_locations(cadata=_text(cadata))
    if not verified:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        from mote.compat_cpython import cert_chain

        cert_chain(ctx, _text(cert), _text(key))
    return ctx, verified


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _text(data):
    return data.decode() if isinstance(data, (bytes, bytearray)) else data


def _der(data):
    # PEM to a list of DER blocks, one per BEGIN/END section; DER passes through.
    if isinstance(data, str):
        data = data.encode()
    if not data.lstrip().startswith(b"-----BEGIN"):
        return [data]
    import binascii

    out = []
    body = []  # type: list
    for line in data.split(b"\n"):
        line = line.strip()
        if line.startswith(b"-----END"):
            out.append(binascii.a2b_base64(b"".join(body)))
            body = []
        elif line and not line.startswith(b"-----"):
            body.append(line)
    return out


def verifies(ctx):
    """Whether an SSL context checks the server's certificate."""
    import ssl

    try:
        return ctx.verify_mode != ssl.CERT_NONE
    except AttributeError:
        return True  # cannot tell: do not warn
