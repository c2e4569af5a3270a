"""What the dashboard is started with, and the two places where security is decided.

- ``Access``: who may read and who may act. Acting needs the server to be started with actions
  enabled; with a token file (``tokens``), every API request needs a bearer token: ``reader`` or
  ``client`` to read, ``client`` to act (``admin`` may do both). Every route asks ``Access``.
- ``connect``: the one place that opens the optimizer's channel, with the dashboard's own TLS
  settings and token for the optimizer (``optimizer_security``). TLS for the browser is ``tls``,
  handed to the ASGI server.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from saga.security.channels import PLAIN, ClientSecurity
from saga.security.guard import Guard, Refusal
from saga.security.tls import ServerTLS
from saga.security.tokens import TokenFile

if TYPE_CHECKING:
    from optimizer_svc.client import OptimizerClient
    from starlette.requests import Request

# A model name becomes a path segment of the model base: TF Serving's names are simple.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# Reading the dashboard is reading studies; acting is what a client token may do to them.
POLICY = {"read": ("reader", "client"), "act": ("client",)}
# A browser sends no bearer header: /login keeps its token in this cookie (HttpOnly, SameSite=Strict).
COOKIE = "saga_token"


@dataclass(frozen=True)
class DashboardConfig:
    optimizer: str                  # HOST:PORT of the optimizer's gRPC API
    store: str | None = None        # resolves artifact URIs stored as keys relative to a store
    actions: bool = False           # stop a study, export its best trial
    export_to: str | None = None    # model base URI the export action writes to
    host: str = "127.0.0.1"
    port: int = 8080
    tls: ServerTLS | None = None    # HTTPS for the browser (mutual TLS with tls.client_ca)
    tokens: TokenFile | None = None  # API requests need a bearer token from this file
    optimizer_security: ClientSecurity = PLAIN  # the dashboard's TLS and token towards the optimizer

    def __post_init__(self) -> None:
        if not self.optimizer or ":" not in self.optimizer:
            raise ValueError(f"--optimizer must be HOST:PORT, got {self.optimizer!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be in [0, 65535], got {self.port}")


class Access:
    """Decides, per request, whether it may read and whether it may act."""

    def __init__(self, config: DashboardConfig):
        self.config = config
        self.guard = Guard(config.tokens, POLICY, "the dashboard") if config.tokens else None

    def may_read(self, request: "Request") -> tuple[int, str] | None:
        """None, or the HTTP status and message of a refusal."""
        return self._token(request, "read")

    def may_act(self, request: "Request") -> tuple[int, str] | None:
        if not self.config.actions:
            return 403, "actions are disabled: start the dashboard with --enable-actions"
        return self._token(request, "act")

    def _token(self, request: "Request", what: str) -> tuple[int, str] | None:
        if self.guard is None:
            return None
        cookie = request.cookies.get(COOKIE)
        header = request.headers.get("authorization") or (f"Bearer {cookie}" if cookie else None)
        result = self.guard.check(what, header)
        return (result.http_status, result.message) if isinstance(result, Refusal) else None

    @property
    def tokens_required(self) -> bool:
        return self.guard is not None

    def login(self, token: str) -> str | None:
        """None when ``token`` may read the dashboard, else why not."""
        if self.guard is None:
            return None
        result = self.guard.check("read", f"Bearer {token}")
        return result.message if isinstance(result, Refusal) else None


def connect(config: DashboardConfig) -> "OptimizerClient":
    """The dashboard's client of the optimizer (its retries and deadlines included)."""
    from optimizer_svc.client import OptimizerClient

    # A page waits on these calls: give up on an unreachable optimizer in seconds, not a minute.
    return OptimizerClient(config.optimizer, deadline=10.0, retry_for=5.0, security=config.optimizer_security)
