"""Fixtures: a small trained classifier, its export, and a running server on free ports."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # make `tests.serving.helpers` importable

import keras  # noqa: E402
import pytest  # noqa: E402

from serving.export import ExportResult  # noqa: E402
from serving.server import ServingServer  # noqa: E402
from tests.serving.helpers import build_model, export, start_server  # noqa: E402


@pytest.fixture(scope="session")
def model() -> keras.Model:
    return build_model(seed=1)


@pytest.fixture(scope="session")
def exported(model: keras.Model, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export(model, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def server(exported: ExportResult) -> Iterator[ServingServer]:
    server = start_server(Path(exported.uri).parent.parent, max_payload_bytes=200_000)
    yield server
    server.stop()
