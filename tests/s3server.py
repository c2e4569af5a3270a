"""A real S3 server on loopback for tests: moto's standalone server (MinIO cannot be installed here).

Reusable by any part's tests::

    from tests.s3server import start_s3_server, s3_env
    endpoint, stop = start_s3_server()
    try:
        monkeypatch.setenv(...) for name, value in s3_env(endpoint).items()
        store = open_store("s3://bucket/prefix")
    finally:
        stop()
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable

# Throwaway credentials moto accepts; real deployments read theirs from the environment.
ACCESS_KEY = "saga-test-access"
SECRET_KEY = "saga-test-secret-9f8e7d6c5b4a"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_s3_server(timeout_s: float = 15.0) -> tuple[str, Callable[[], None]]:
    """Starts moto's S3 server on 127.0.0.1 and a free port; returns ``(endpoint, stop)`` with
    ``endpoint`` as ``host:port`` (plain HTTP). Raises RuntimeError if it does not come up."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"moto S3 server did not start on port {port}")
            time.sleep(0.05)
    return f"127.0.0.1:{port}", server.stop


def s3_env(endpoint: str) -> dict[str, str]:
    """The SAGA_S3_* variables that point ``open_store("s3://...")`` at ``endpoint``."""
    return {"SAGA_S3_ENDPOINT": endpoint, "SAGA_S3_ACCESS_KEY": ACCESS_KEY,
            "SAGA_S3_SECRET_KEY": SECRET_KEY, "SAGA_S3_SECURE": "false", "SAGA_S3_REGION": REGION}
