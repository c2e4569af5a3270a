"""Runs the dashboard: binds the port first (so port 0 works and the address can be printed), then
serves the app with uvicorn until SIGINT or SIGTERM."""
from __future__ import annotations

import socket
from typing import Callable

import uvicorn

from .app import make_app
from .config import DashboardConfig
from .metrics import Metrics

# Live pages hold a stream open for as long as they are shown: shutdown waits this long for them.
GRACEFUL_SHUTDOWN_S = 2


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame) -> None:
        super().handle_exit(sig, frame)
        # uvicorn raises the signal again after its graceful shutdown; for Saga's services a stop
        # signal is the normal end (exit 0, like the optimizer and the trainers).
        self._captured_signals.clear()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(config: DashboardConfig, ready: Callable[[str], None] = print, metrics_port: int | None = None) -> None:
    """Blocks until a stop signal. ``ready`` gets the page's URL once the port is bound; Prometheus
    metrics on ``metrics_port`` when given."""
    metrics = Metrics()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=config.host, registry=metrics.registry)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    scheme = "https" if config.tls else "http"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    tls: dict = {}
    if config.tls:
        # Read before serving (an unreadable or mismatched file: a one-line error), and reread when
        # the files change (saga.security.tls).
        context = config.tls.ssl_context()
        tls = {"ssl_certfile": str(config.tls.cert), "ssl_keyfile": str(config.tls.key),
               "ssl_context_factory": lambda _config, _default: context}
    server = _Server(uvicorn.Config(make_app(config, metrics=metrics), log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, **tls))
    ready(f"dashboard listening on {scheme}://{shown}:{port}/ (optimizer {config.optimizer}, "
          f"actions {'enabled' if config.actions else 'disabled'})")
    server.run(sockets=[sock])
