"""What the dashboard is started with, and the two places where security is decided.

- ``Access``: who may read and who may act. Today reading is open and acting needs the server to be
  started with actions enabled. When the APIs get role tokens (issue 16), the bearer token of the
  request is checked here, and only here: every route asks ``Access``.
- ``connect``: the one place that opens the optimizer's channel; TLS and the dashboard's own token
  for the optimizer go there. TLS for the browser is ``ServerTLS``, handed to the ASGI server.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optimizer_svc.client import OptimizerClient
    from starlette.requests import Request

# A model name becomes a path segment of the model base: TF Serving's names are simple.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ServerTLS:
    certfile: str
    keyfile: str


@dataclass(frozen=True)
class DashboardConfig:
    optimizer: str                  # HOST:PORT of the optimizer's gRPC API
    store: str | None = None        # resolves artifact URIs stored as keys relative to a store
    actions: bool = False           # stop a study, export its best trial
    export_to: str | None = None    # model base URI the export action writes to
    host: str = "127.0.0.1"
    port: int = 8080
    tls: ServerTLS | None = None

    def __post_init__(self) -> None:
        if not self.optimizer or ":" not in self.optimizer:
            raise ValueError(f"--optimizer must be HOST:PORT, got {self.optimizer!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be in [0, 65535], got {self.port}")


class Access:
    """Decides, per request, whether it may read and whether it may act."""

    def __init__(self, config: DashboardConfig):
        self.config = config

    def may_read(self, request: "Request") -> bool:
        return True

    def may_act(self, request: "Request") -> tuple[bool, str]:
        """``(allowed, why not)``."""
        if not self.config.actions:
            return False, "actions are disabled: start the dashboard with --enable-actions"
        return True, ""


def connect(config: DashboardConfig) -> "OptimizerClient":
    """The dashboard's client of the optimizer (its retries and deadlines included)."""
    from optimizer_svc.client import OptimizerClient

    # A page waits on these calls: give up on an unreachable optimizer in seconds, not a minute.
    return OptimizerClient(config.optimizer, deadline=10.0, retry_for=5.0)
