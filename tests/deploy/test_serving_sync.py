"""The TF Serving sync sidecar against a real S3 server: TF Serving only ever sees complete versions."""
from __future__ import annotations

import importlib.util
import io
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from minio import Minio

from .conftest import K8S

CREDS = {"SAGA_S3_ACCESS_KEY": "testing", "SAGA_S3_SECRET_KEY": "testing-secret"}


def _load_sync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_models", K8S / "serving-sync" / "sync_models.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


sync_models = _load_sync()


@pytest.fixture()
def bucket(s3_endpoint: str) -> tuple[Minio, str]:
    client = Minio(s3_endpoint, access_key=CREDS["SAGA_S3_ACCESS_KEY"],
                   secret_key=CREDS["SAGA_S3_SECRET_KEY"], secure=False)
    name = f"saga-{uuid.uuid4().hex[:8]}"
    client.make_bucket(name)
    return client, name


def _put(client: Minio, bucket: str, key: str, data: bytes) -> None:
    client.put_object(bucket, key, io.BytesIO(data), len(data))


def _upload_version(client: Minio, bucket: str, version: int, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        _put(client, bucket, f"models/kvasir/{version}/{rel}", data)


SAVED_MODEL = {
    "saved_model.pb": b"graph" * 100,
    "fingerprint.pb": b"fp",
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": b"weights" * 1000,
}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_complete_version_is_copied_after_its_listing_is_stable(bucket, tmp_path: Path) -> None:
    client, name = bucket
    _upload_version(client, name, 1, SAVED_MODEL)
    sync = sync_models.ModelSync(client, name, "models", "kvasir", tmp_path, keep=2)

    assert sync.poll() == []  # first sight: could still be uploading
    assert sync.poll() == [1]
    assert _tree(tmp_path / "kvasir" / "1") == SAVED_MODEL
    assert not any((tmp_path / ".staging").iterdir())  # nothing left half-way


def test_incomplete_version_never_reaches_tf_serving(bucket, tmp_path: Path) -> None:
    client, name = bucket
    _upload_version(client, name, 3, {"saved_model.pb": b"graph"})  # variables not uploaded yet
    sync = sync_models.ModelSync(client, name, "models", "kvasir", tmp_path, keep=2)
    for _ in range(3):
        assert sync.poll() == []
    assert sync.local_versions() == []

    _upload_version(client, name, 3, {"variables/variables.index": b"i", "variables/variables.data-00000-of-00001": b"w"})
    assert sync.poll() == []  # listing changed since the last poll
    assert sync.poll() == [3]
    assert (tmp_path / "kvasir" / "3" / "variables" / "variables.index").read_bytes() == b"i"


def test_old_versions_are_pruned_and_non_numeric_keys_ignored(bucket, tmp_path: Path) -> None:
    client, name = bucket
    for version in (1, 2, 10):
        _upload_version(client, name, version, SAVED_MODEL)
    _put(client, name, "models/kvasir/model_card.json", b"{}")
    _put(client, name, "models/kvasir/latest/saved_model.pb", b"x")
    sync = sync_models.ModelSync(client, name, "models", "kvasir", tmp_path, keep=2)
    sync.poll()
    assert sync.poll() == [1, 2, 10]
    assert sync.local_versions() == [2, 10]  # numeric order, not string order


def test_settings_come_from_env_and_bad_values_are_named() -> None:
    settings = sync_models.s3_settings_from_env({"SAGA_S3_ENDPOINT": "https://minio.example:9000", **CREDS})
    assert (settings.endpoint, settings.secure) == ("minio.example:9000", True)
    assert "testing-secret" not in repr(settings)
    with pytest.raises(sync_models.ConfigError, match="SAGA_S3_ENDPOINT"):
        sync_models.s3_settings_from_env(CREDS)
    with pytest.raises(sync_models.ConfigError, match="SAGA_S3_SECRET_KEY"):
        sync_models.s3_settings_from_env({"SAGA_S3_ENDPOINT": "minio:9000", "SAGA_S3_ACCESS_KEY": "a"})
    with pytest.raises(sync_models.ConfigError, match="SAGA_S3_SECURE"):
        sync_models.s3_settings_from_env({"SAGA_S3_ENDPOINT": "minio:9000", "SAGA_S3_SECURE": "maybe", **CREDS})
    with pytest.raises(sync_models.ConfigError, match="--source"):
        sync_models.parse_source("/models")


def test_main_runs_once_and_refuses_bad_config(bucket, s3_endpoint: str, tmp_path: Path, caplog) -> None:
    client, name = bucket
    _upload_version(client, name, 7, SAVED_MODEL)
    env = {"SAGA_S3_ENDPOINT": s3_endpoint, **CREDS}
    argv = ["--source", f"s3://{name}/models", "--model-name", "kvasir", "--dest", str(tmp_path),
            "--interval", "0.05", "--metrics-port", "0", "--once"]
    assert sync_models.main(argv, env) == 0
    assert (tmp_path / "kvasir" / "7" / "saved_model.pb").is_file()
    assert "testing-secret" not in caplog.text

    assert sync_models.main(argv[:3] + ["../x"] + argv[4:], env) == 2
    assert "--model-name" in caplog.text
