"""Fixtures of the local-stack tests."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _quiet_tf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
