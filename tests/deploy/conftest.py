"""Fixtures of the deployment tests: paths, the rendered manifests, a real S3 server (moto)."""
from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``host:port`` of a moto S3 server on loopback, for the real minio client."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


# The kustomizations a user applies (overlays) and the base they share.
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/gpu")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """kustomization name -> its rendered objects (the small renderer; checked against kustomize)."""
    from .kustomize import render

    return {name: render(K8S / name) for name in KUSTOMIZATIONS}
