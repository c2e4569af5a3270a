"""Fixtures for the datastore tests: a moto S3 server per session, a fresh store per test."""
from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # make `tests.s3server` importable

from datastore import ObjectStore, open_store  # noqa: E402
from datastore.retry import RetryPolicy  # noqa: E402
from tests.s3server import s3_env  # noqa: E402

_buckets = itertools.count()
# Tests must not wait seconds on a failure path; production keeps the default policy.
FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.02)


@pytest.fixture
def s3_environ(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = s3_env(s3_endpoint)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_uri(s3_environ: dict[str, str]) -> str:
    """A fresh bucket (created on first write) and prefix, so tests never see each other."""
    return f"s3://saga-test-{os.getpid()}-{next(_buckets)}/data/set"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The same contract tests run against both backends."""
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    return open_store(request.getfixturevalue("s3_uri"), retry=FAST_RETRY)
