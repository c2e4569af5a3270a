"""Fixtures shared by every part's tests."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.s3server import start_s3_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``host:port`` of a real S3 server (moto) on loopback, for the real minio client."""
    endpoint, stop = start_s3_server()
    try:
        yield endpoint
    finally:
        stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A throwaway CA with server, client and expired certificates (tests/certs.py)."""
    from tests.certs import make_certs
    return make_certs(tmp_path_factory.mktemp("certs"))
