"""A gRPC channel to a kvtierd or kvtier-indexer port, protected as the port is.

    from kvtier.grpc_channel import node_channel
    from kvtier.v1 import locality_pb2_grpc

    channel = node_channel("kvtierd.kvtier.svc:50551", ca_file="/etc/kvtier/tls/ca.crt",
                           cert_file="/etc/kvtier/tls/tls.crt", key_file="/etc/kvtier/tls/tls.key")
    stub = locality_pb2_grpc.LocalityStub(channel)

TLS when ca_file is given (the CA the port's certificate chains to), mutual TLS with cert_file and
key_file, and a bearer token from token_file on every call (re-read when the file changes, so a
rotated Kubernetes Secret takes effect). With none of them, a plaintext channel: what kvtierd's
loopback default serves. docs/operations.md ("Security") lists which roles each call needs.
"""

import os
import threading
import time

import grpc

__all__ = ["node_channel"]


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class _TokenFile:
    """The token in a file, looked at again at most once a second."""

    def __init__(self, path):
        self._path = path
        self._lock = threading.Lock()
        self._stamp = None
        self._token = None
        self._checked = 0.0
        self._refresh()
        if not self._token:
            raise ValueError(f"token file {path} is empty")

    def _refresh(self):
        st = os.stat(self._path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp != self._stamp:
            token = _read(self._path).decode("ascii").strip()
            if token:  # an emptied file keeps the token read before
                self._token = token
                self._stamp = stamp

    def value(self):
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= 1.0:
                self._checked = now
                try:
                    self._refresh()
                except OSError:
                    pass  # a Secret mid-update: the previous token stays
            return self._token


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call (plaintext channels included, which
    gRPC's call credentials refuse: a loopback port with grants still wants the token)."""

    def __init__(self, token):
        self._token = token

    def _with_token(self, details):
        metadata = list(details.metadata or [])
        metadata.append(("authorization", "Bearer " + self._token.value()))
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base, metadata):
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


def node_channel(address, *, ca_file=None, cert_file=None, key_file=None, server_name=None, token_file=None,
                 options=()):
    """A grpc.Channel to `address` (host:port). See the module's docstring."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file go together")
    if ca_file is None and (cert_file is not None or server_name is not None):
        raise ValueError("a client certificate or server_name needs ca_file (TLS)")
    options = list(options)
    if ca_file is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(ca_file),
            private_key=_read(key_file) if key_file else None,
            certificate_chain=_read(cert_file) if cert_file else None)
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        channel = grpc.secure_channel(address, credentials, options=options)
    if token_file is not None:
        channel = grpc.intercept_channel(channel, _BearerToken(_TokenFile(token_file)))
    return channel
