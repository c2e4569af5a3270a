"""Listening ports, one rule for every Saga server: a port is used by one process only.

grpcio sets SO_REUSEPORT by default, so a second server on a taken port binds too and the kernel
splits connections between the two (two optimizers answering from two databases). Every gRPC
server here passes ``GRPC_SERVER_OPTIONS``; a taken port is a :class:`PortInUse` with a one-line
message naming the port and the service, which the CLI prints as it is.
"""
from __future__ import annotations

import errno
import socket
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

GRPC_SERVER_OPTIONS: tuple[tuple[str, Any], ...] = (("grpc.so_reuseport", 0),)


class PortInUse(OSError):
    """Another process listens on the port; the message names it."""


def _in_use(what: str, host: str, port: int) -> PortInUse:
    return PortInUse(f"{what}: port {port} on {host} is already in use by another process; "
                     f"stop that process or choose another port")


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def check_free(what: str, host: str, port: int) -> None:
    """PortInUse if ``port`` on ``host`` cannot be bound now (port 0 always can). Checked before a
    gRPC server binds, so the user reads our message rather than grpc's log line."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise _in_use(what, host, port) from None
            raise


def bind_failed(what: str, host: str, port: int, error: Exception) -> OSError:
    """The error for a gRPC ``add_insecure_port`` that failed (grpcio raises RuntimeError)."""
    try:
        check_free(what, host, port)
    except PortInUse as e:
        return e
    return OSError(f"{what}: cannot listen on {host}:{port} ({error})")


def start_metrics_server(what: str, port: int, registry: CollectorRegistry, host: str = "0.0.0.0") -> int:
    """prometheus-client's HTTP server on ``port``; returns the port bound (PortInUse if taken)."""
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise _in_use(f"{what} metrics", host, port) from None
        raise
    return server.server_port
