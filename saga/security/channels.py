"""The gRPC channel every Saga client opens: TLS when configured, the bearer token on every call.

``ClientSecurity.from_env()`` (SAGA_TLS_CA, SAGA_TLS_CLIENT_CERT/KEY, SAGA_TOKEN or
SAGA_TOKEN_FILE) is for entry points; ``from_args`` adds the CLI flags on top.
"""
from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import grpc

from . import tls, tokens


@dataclass(frozen=True)
class ClientSecurity:
    """How a client proves the server is genuine (``tls``) and who it is: ``token``, or the file
    ``token_file`` holding it, reread when it changes (a rotated Secret)."""

    tls: tls.ClientTLS | None = None
    token: str | None = None
    token_file: tokens.ClientTokenFile | None = None

    def __repr__(self) -> str:  # never print the token
        given = "set" if self.token else (str(self.token_file.path) if self.token_file else None)
        return f"ClientSecurity(tls={self.tls!r}, token={given})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "ClientSecurity":
        return cls(tls.client_tls_from_env(env), *tokens.client_token_source(env))

    @classmethod
    def from_args(cls, args: Any, env: Mapping[str, str] = os.environ) -> "ClientSecurity":
        """Flags added by :func:`add_flags` (their defaults already read the environment)."""
        return cls(tls.client_tls_from_args(args), *tokens.client_token_source(env, getattr(args, "token_file", None)))

    @classmethod
    def with_token_file(cls, client_tls: tls.ClientTLS | None, path: str | Path) -> "ClientSecurity":
        return cls(client_tls, *tokens.client_token_source({}, str(path)))

    def current_token(self) -> str | None:
        return self.token_file.current() if self.token_file is not None else self.token

    @property
    def has_token(self) -> bool:
        return bool(self.token or self.token_file)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        token = self.current_token()
        return (("authorization", f"Bearer {token}"),) if token else ()

    def http_headers(self) -> dict[str, str]:
        token = self.current_token()
        return {"Authorization": f"Bearer {token}"} if token else {}


PLAIN = ClientSecurity()


def add_flags(parser, env: Mapping[str, str] = os.environ) -> None:
    """The client flags: TLS (saga.security.tls) and --token-file."""
    tls.add_client_flags(parser, env)
    parser.add_argument("--token-file", default=None,
                        help=f"file holding this client's token, reread when it changes "
                             f"(else env {tokens.ENV_TOKEN} or {tokens.ENV_TOKEN_FILE})")


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                   "wait_for_ready", "compression")),
               grpc.ClientCallDetails):
    pass


class _BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                         grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer TOKEN`` to every call (on plain text too, unlike grpc's call
    credentials, so a loopback or service-mesh deployment can use tokens without TLS)."""

    def __init__(self, security: ClientSecurity):
        self._security = security

    def _details(self, d: grpc.ClientCallDetails) -> _Details:
        return _Details(d.method, d.timeout, [*(d.metadata or ()), *self._security.metadata()], d.credentials,
                        d.wait_for_ready, d.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


def channel(target: str, security: ClientSecurity | None = None,
            options: Sequence[tuple[str, Any]] = (), *, attach_token: bool = True) -> grpc.Channel:
    """A channel to ``target``: TLS when ``security.tls`` is set, the token on every call
    (``attach_token=False``: the caller passes ``security.metadata()`` itself, which saves an
    interceptor's cost on every call of a busy client)."""
    security = security or PLAIN
    if security.tls is None:
        ch = grpc.insecure_channel(target, options=list(options))
    else:
        ch = grpc.secure_channel(target, security.tls.grpc_credentials(), options=list(options))
    if security.has_token and attach_token:
        return grpc.intercept_channel(ch, _BearerInterceptor(security))
    return ch


def hint(details: str | None, security: ClientSecurity | None) -> str:
    """A sentence to add to a connection error when TLS or a token is the likely cause."""
    text = (details or "").lower()
    if tls.is_handshake_failure(details):
        if security is None or security.tls is None:
            return " (the server may use TLS: give its CA bundle with --tls-ca or SAGA_TLS_CA)"
        return " (TLS handshake failed: check the CA bundle, the certificate's dates and host name, " \
               "and for mutual TLS --tls-client-cert/--tls-client-key)"
    if "socket closed" in text:
        if security is None or security.tls is None:
            return " (if the server uses TLS, give its CA bundle with --tls-ca or SAGA_TLS_CA)"
        if security.tls.cert is None:
            return " (if the server requires mutual TLS, give a client certificate with " \
                   "--tls-client-cert/--tls-client-key or SAGA_TLS_CLIENT_CERT/SAGA_TLS_CLIENT_KEY)"
    return ""
