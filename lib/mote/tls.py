# mote.tls: compat's TLS half, imported only when a connection uses TLS, so plain-TCP
# users never load it. MicroPython's mbedTLS and CPython's ssl differ in what they take
# (DER vs PEM, the default verify mode): that difference lives here and in compat only.
from mote.compat import MICROPYTHON


def wrap(tls, params, sock, host, warned):
    """Wrap a connected socket in TLS and complete the handshake (blocking, under the
    socket's timeout). tls: True (a context built from params) or the caller's context.
    Returns (tls socket, warned): warns once when the server is not verified."""
    if tls is True or not hasattr(tls, "wrap_socket"):
        ctx, verified = context(params)
    else:
        ctx = tls
        verified = verifies(ctx)
    if not verified and not warned:
        warned = True
        print("mote: WARNING: TLS without a CA: the server's identity is NOT verified")
    return ctx.wrap_socket(sock, server_hostname=params.get("server_hostname", host)), warned


def context(params):
    """An SSL context from umqtt-style ssl_params: cafile/cadata (the CA to verify the
    server), certfile/keyfile (client certificate for mutual TLS). Returns (context,
    verified): verified is False when no CA was given and the server is not checked."""
    import ssl

    cafile = params.get("cafile")
    cadata = params.get("cadata")
    certfile = params.get("certfile")
    keyfile = params.get("keyfile")
    verified = bool(cafile or cadata)
    if MICROPYTHON:
        # mbedTLS here takes DER only, and verifies only with CERT_REQUIRED (its default
        # is CERT_NONE): PEM is converted, the mode set explicitly.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cafile:
            cadata = _read(cafile)
        if cadata:
            ctx.load_verify_locations(cadata=_der(cadata))
        if certfile:
            ctx.load_cert_chain(_der(_read(certfile)), _der(_read(keyfile or certfile)))
        # The ESP32 stubs lack verify_mode; the port has it (extmod's tls module).
        ctx.verify_mode = ssl.CERT_REQUIRED if verified else ssl.CERT_NONE  # type: ignore[attr-defined]
        return ctx, verified
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verified:
        if isinstance(cadata, (bytes, bytearray)) and not cadata.lstrip().startswith(b"-----"):
            ctx.load_verify_locations(cadata=bytes(cadata))  # DER
        else:
            if isinstance(cadata, (bytes, bytearray)):
                cadata = cadata.decode()
            ctx.load_verify_locations(cafile=cafile, cadata=cadata)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx, verified


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _der(data):
    # PEM (base64 between -----BEGIN/END----- lines) to DER; DER passes through.
    if isinstance(data, str):
        data = data.encode()
    if not data.lstrip().startswith(b"-----BEGIN"):
        return data
    import binascii

    body = b"".join(
        line for line in data.split(b"\n") if line.strip() and not line.startswith(b"-----")
    )
    return binascii.a2b_base64(body)


def verifies(ctx):
    """Whether an SSL context checks the server's certificate."""
    import ssl

    try:
        return ctx.verify_mode != ssl.CERT_NONE
    except AttributeError:
        return True  # cannot tell: do not warn
