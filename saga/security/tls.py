"""TLS from certificate files, one place for every Saga server and client.

Servers (optimizer gRPC, serving gRPC and REST, dashboard) take a certificate chain and key (PEM
files, e.g. a cert-manager Secret mounted at /etc/saga/tls/tls.crt and tls.key) and, for mutual
TLS, the CA that client certificates must chain to. Clients take the CA bundle that signed the
server's certificate and, for mutual TLS, their own certificate and key. Nothing configured means
plain text (the loopback default of ``saga up`` and ``saga demo``).

A server rereads its certificate, key and client CA when the files change (a renewed cert-manager
Secret, a rotated mounted Secret): new connections get the new certificate, open ones keep theirs,
and files that do not load yet (half of a rotation) keep the previous certificate. A client's
files are read when its channel is built; tokens are reread on change (saga.security.tokens).
"""
from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generic, Mapping, TypeVar

import grpc

from saga.security import SecurityConfigError, file_stamp

ENV_CA, ENV_CLIENT_CERT, ENV_CLIENT_KEY = "SAGA_TLS_CA", "SAGA_TLS_CLIENT_CERT", "SAGA_TLS_CLIENT_KEY"
ENV_CERT, ENV_KEY, ENV_CLIENT_CA = "SAGA_TLS_CERT", "SAGA_TLS_KEY", "SAGA_TLS_CLIENT_CA"
# grpc's wording for a failed handshake; an error carrying one of these is not worth retrying.
HANDSHAKE_MARKERS = ("handshake failed", "certificate_verify_failed", "ssl_error", "wrong_version_number")
# How often a new connection may look at the certificate files (a stat of each) for a rotation.
RELOAD_CHECK_S = 1.0

log = logging.getLogger(__name__)
T = TypeVar("T")


class TLSConfigError(SecurityConfigError):
    """A certificate option is incomplete or a file cannot be read; the message names it."""


def _read(what: str, path: str | Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TLSConfigError(f"{what} {path}: cannot read ({e.strerror})") from None
    if b"-----BEGIN" not in data:
        raise TLSConfigError(f"{what} {path}: not a PEM file")
    return data


def _stamp(paths: tuple[Path, ...]) -> tuple:
    """The files' stamps together (None for one that is gone)."""
    stamps = []
    for path in paths:
        try:
            stamps.append(file_stamp(path))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


class _Reloading(Generic[T]):
    """Something built from certificate files, rebuilt when they change: looked at on new
    connections, at most every RELOAD_CHECK_S. Files that fail to build keep the previous value and
    are tried again at the next look."""

    def __init__(self, paths: tuple[Path, ...], build: Callable[[], T]) -> None:
        self._paths, self._build = paths, build
        self._stamp = _stamp(paths)
        self.value: T = build()  # unreadable at start: the caller's one-line error
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """True when the files changed and ``value`` was rebuilt from them."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked < RELOAD_CHECK_S:
                return False
            self._checked = now
            stamp = _stamp(self._paths)
            if stamp == self._stamp:
                return False
            try:
                value = self._build()
            except (TLSConfigError, ssl.SSLError, OSError) as e:
                log.warning("TLS files changed but do not load (%s); keeping the previous certificate", e)
                return False
            self.value, self._stamp = value, stamp
            log.info("TLS certificate reloaded from %s", self._paths[0])
            return True


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate chain and key; ``client_ca`` set: mutual TLS (clients must present a
    certificate signed by it)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())

    def _grpc_configuration(self):
        self._context()  # the key must belong to the certificate: grpc would only fail handshakes
        pair = (_read("TLS key", self.key), _read("TLS certificate", self.cert))
        ca = _read("TLS client CA", self.client_ca) if self.client_ca else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=ca)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials that follow the files: grpc asks for the configuration at each handshake."""
        configuration = _Reloading(self.files, self._grpc_configuration)

        def fetch():
            try:
                return configuration.value if configuration.refresh() else None
            except Exception:  # noqa: BLE001 - a handshake must never fail on the check itself
                log.exception("TLS reload check failed; keeping the previous certificate")
                return None
        return grpc.dynamic_ssl_server_credentials(configuration.value, fetch,
                                                   require_client_authentication=self.client_ca is not None)

    def ssl_context(self) -> ssl.SSLContext:
        """For HTTPS servers (serving REST, the dashboard). Its handshake callback hands each new
        connection the context of the newest files."""
        contexts = _Reloading(self.files, self._context)
        listening = contexts.value

        def on_hello(connection, server_name, context) -> None:
            try:
                contexts.refresh()
                if contexts.value is not listening:
                    connection.context = contexts.value
            except Exception:  # noqa: BLE001 - as in grpc_credentials
                log.exception("TLS reload check failed; keeping the previous certificate")
        listening.sni_callback = on_hello
        return listening

    def _context(self) -> ssl.SSLContext:
        for what, path in (("TLS certificate", self.cert), ("TLS key", self.key)):
            _read(what, path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.cert), str(self.key))
        except ssl.SSLError as e:
            raise TLSConfigError(f"TLS certificate {self.cert} and key {self.key} do not load together "
                                 f"({e.reason or e}): is the key the certificate's?") from None
        if self.client_ca:
            _read("TLS client CA", self.client_ca)
            context.load_verify_locations(cafile=str(self.client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass(frozen=True)
class ClientTLS:
    """What a client trusts (``ca``; None: the system's roots) and, for mutual TLS, who it is."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise TLSConfigError("a TLS client certificate needs its key and a key its certificate "
                                 f"(--tls-client-cert/--tls-client-key, env {ENV_CLIENT_CERT}/{ENV_CLIENT_KEY})")

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read("TLS CA bundle", self.ca) if self.ca else None,
            private_key=_read("TLS client key", self.key) if self.key else None,
            certificate_chain=_read("TLS client certificate", self.cert) if self.cert else None)

    def ssl_context(self) -> ssl.SSLContext:
        """For HTTPS clients (``saga classify --rest``, tests)."""
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.ca:
            _read("TLS CA bundle", self.ca)
        if self.cert and self.key:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context


def server_tls(cert: str | None, key: str | None, client_ca: str | None = None) -> ServerTLS | None:
    """ServerTLS from option values; None when neither certificate nor key is given."""
    if not cert and not key:
        if client_ca:
            raise TLSConfigError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
        return None
    if not cert or not key:
        raise TLSConfigError("TLS needs both --tls-cert and --tls-key (env SAGA_TLS_CERT, SAGA_TLS_KEY)")
    return ServerTLS(Path(cert), Path(key), Path(client_ca) if client_ca else None)


def client_tls(ca: str | None, cert: str | None = None, key: str | None = None,
               use_tls: bool = False) -> ClientTLS | None:
    """ClientTLS from option values; None (plain text) when nothing is given and ``use_tls`` is off."""
    if not (ca or cert or key or use_tls):
        return None
    return ClientTLS(Path(ca) if ca else None, Path(cert) if cert else None, Path(key) if key else None)


def add_server_flags(parser, env: Mapping[str, str] = os.environ) -> None:
    """--tls-cert, --tls-key, --tls-client-ca with their environment defaults."""
    parser.add_argument("--tls-cert", default=env.get(ENV_CERT),
                        help=f"serve TLS with this PEM certificate chain (env {ENV_CERT}; with --tls-key)")
    parser.add_argument("--tls-key", default=env.get(ENV_KEY), help=f"the certificate's PEM key (env {ENV_KEY})")
    parser.add_argument("--tls-client-ca", default=env.get(ENV_CLIENT_CA),
                        help=f"mutual TLS: accept only clients with a certificate signed by this CA "
                             f"(env {ENV_CLIENT_CA})")


def add_client_flags(parser, env: Mapping[str, str] = os.environ) -> None:
    """--tls-ca, --tls-client-cert, --tls-client-key with their environment defaults."""
    parser.add_argument("--tls-ca", default=env.get(ENV_CA),
                        help=f"connect with TLS, trusting this PEM CA bundle (env {ENV_CA})")
    parser.add_argument("--tls-client-cert", default=env.get(ENV_CLIENT_CERT),
                        help=f"mutual TLS: this client's PEM certificate (env {ENV_CLIENT_CERT})")
    parser.add_argument("--tls-client-key", default=env.get(ENV_CLIENT_KEY),
                        help=f"mutual TLS: this client's PEM key (env {ENV_CLIENT_KEY})")


def server_tls_from_args(args) -> ServerTLS | None:
    return server_tls(getattr(args, "tls_cert", None), getattr(args, "tls_key", None),
                      getattr(args, "tls_client_ca", None))


def client_tls_from_args(args) -> ClientTLS | None:
    return client_tls(getattr(args, "tls_ca", None), getattr(args, "tls_client_cert", None),
                      getattr(args, "tls_client_key", None))


def client_tls_from_env(env: Mapping[str, str] = os.environ) -> ClientTLS | None:
    return client_tls(env.get(ENV_CA), env.get(ENV_CLIENT_CERT), env.get(ENV_CLIENT_KEY))


def add_port(server, address: str, tls: ServerTLS | None) -> int:
    """Binds a grpc (or grpc.aio) server to ``address``, with TLS when configured; the port."""
    if tls is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, tls.grpc_credentials())


def is_handshake_failure(details: str | None) -> bool:
    """True when a gRPC error's details say the TLS handshake failed (wrong CA, expired or missing
    certificate, plain text against TLS): retrying cannot help."""
    text = (details or "").lower()
    return any(marker in text for marker in HANDSHAKE_MARKERS)


def exposure_warning(what: str, host: str, tls: ServerTLS | None, tokens: object | None) -> str | None:
    """A warning for a server reachable beyond this machine without TLS or tokens; None on loopback
    (``saga up``, ``saga demo``) or when both are on."""
    if host in ("127.0.0.1", "::1", "localhost") or (tls is not None and tokens is not None):
        return None
    missing = " and ".join(m for m, on in (("TLS", tls), ("tokens", tokens)) if on is None)
    return (f"{what} listens on {host} without {missing}: anyone who reaches the port can use it "
            "(docs/SECURITY.md: --tls-cert/--tls-key, --token-hashes)")
