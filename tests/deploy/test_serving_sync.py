"""The TF Serving sync sidecar against a real S3 server: TF Serving only ever sees complete versions."""
from __future__ import annotations

import importlib.util
import io
import json
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from minio import Minio

from .conftest import K8S

from tests.s3server import ACCESS_KEY, SECRET_KEY

CREDS = {"SAGA_S3_ACCESS_KEY": ACCESS_KEY, "SAGA_S3_SECRET_KEY": SECRET_KEY}


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
    "assets.extra/model_card.json": b"{}",
}


def _marker(files: list[str]) -> dict[str, bytes]:
    return {sync_models.MARKER: json.dumps({"files": files}).encode()}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_marker_matches_the_exporters_contract() -> None:
    layout = pytest.importorskip("serving.layout")
    assert sync_models.MARKER == layout.MARKER


def test_a_version_published_by_the_exporter_reaches_tf_serving_whole(bucket, s3_endpoint, tmp_path) -> None:
    """The real publish step of ``saga export`` (serving.layout) to S3, then one sync poll."""
    layout = pytest.importorskip("serving.layout")
    datastore = pytest.importorskip("datastore")
    client, name = bucket
    staged = tmp_path / "staged"
    for rel, data in SAVED_MODEL.items():
        (staged / rel).parent.mkdir(parents=True, exist_ok=True)
        (staged / rel).write_bytes(data)
    layout.write_marker(staged, {"name": "kvasir", "version": 1})
    expected = _tree(staged)
    store = datastore.open_store(f"s3://{name}/models", env={"SAGA_S3_ENDPOINT": s3_endpoint,
                                                              "SAGA_S3_SECURE": "false", **CREDS})
    layout.open_model_base(store).publish("kvasir", 1, staged)

    dest = tmp_path / "models"
    sync = sync_models.ModelSync(client, name, "models", "kvasir", dest, keep=2)
    assert sync.poll() == [1]
    assert _tree(dest / "kvasir" / "1") == expected
    assert not any((dest / ".staging").iterdir())  # nothing left half-way
    assert sync.poll() == []  # already there


def test_a_version_without_its_marker_never_reaches_tf_serving(bucket, tmp_path: Path) -> None:
    client, name = bucket
    _upload_version(client, name, 3, SAVED_MODEL)  # the marker (uploaded last) is not there yet
    sync = sync_models.ModelSync(client, name, "models", "kvasir", tmp_path, keep=2)
    assert sync.poll() == []
    assert sync.local_versions() == []

    _upload_version(client, name, 3, _marker(sorted(SAVED_MODEL)))
    assert sync.poll() == [3]
    assert _tree(tmp_path / "kvasir" / "3") == {**SAVED_MODEL, **_marker(sorted(SAVED_MODEL))}


@pytest.mark.parametrize("files", [
    sorted(SAVED_MODEL) + ["variables/variables.data-00001-of-00002"],  # not uploaded
    ["../../escape"],                                                    # outside the version
    "saved_model.pb",                                                    # not a list
])
def test_a_bad_marker_is_skipped_and_leaves_nothing_behind(bucket, tmp_path: Path, files) -> None:
    client, name = bucket
    _upload_version(client, name, 4, {**SAVED_MODEL, **_marker(files)})
    sync = sync_models.ModelSync(client, name, "models", "kvasir", tmp_path / "models", keep=2)
    assert sync.poll() == []
    assert sync.local_versions() == []
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []


def test_old_versions_are_pruned_and_non_numeric_keys_ignored(bucket, tmp_path: Path) -> None:
    client, name = bucket
    for version in (1, 2, 10):
        _upload_version(client, name, version, {**SAVED_MODEL, **_marker(sorted(SAVED_MODEL))})
    _put(client, name, "models/kvasir/latest/saved_model.pb", b"x")
    sync = sync_models.ModelSync(client, name, "models", "kvasir", tmp_path, keep=2)
    assert sync.poll() == [2, 10]  # numeric order, not string order; 1 would be pruned at once
    _upload_version(client, name, 11, {**SAVED_MODEL, **_marker(sorted(SAVED_MODEL))})
    assert sync.poll() == [11]
    assert sync.local_versions() == [10, 11]


def test_settings_come_from_env_and_bad_values_are_named() -> None:
    settings = sync_models.s3_settings_from_env({"SAGA_S3_ENDPOINT": "https://minio.example:9000", **CREDS})
    assert (settings.endpoint, settings.secure) == ("minio.example:9000", True)
    assert SECRET_KEY not in repr(settings)
    plain = sync_models.s3_settings_from_env({"SAGA_S3_ENDPOINT": "minio:9000", **CREDS})
    assert plain.secure  # like datastore: TLS unless the scheme or SAGA_S3_SECURE says otherwise
    assert not sync_models.s3_settings_from_env({"SAGA_S3_ENDPOINT": "http://minio:9000", **CREDS}).secure
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
    _upload_version(client, name, 7, {**SAVED_MODEL, **_marker(sorted(SAVED_MODEL))})
    env = {"SAGA_S3_ENDPOINT": s3_endpoint, "SAGA_S3_SECURE": "false", **CREDS}
    argv = ["--source", f"s3://{name}/models", "--model-name", "kvasir", "--dest", str(tmp_path),
            "--interval", "0.05", "--metrics-port", "0", "--once"]
    assert sync_models.main(argv, env) == 0
    assert (tmp_path / "kvasir" / "7" / "saved_model.pb").is_file()
    assert SECRET_KEY not in caplog.text

    assert sync_models.main(argv[:3] + ["../x"] + argv[4:], env) == 2
    assert "--model-name" in caplog.text


class _FakeTFServing:
    """TF Serving's REST answer to GET /v1/models/NAME, as documented (404 before the model loads)."""

    def __init__(self) -> None:
        import http.server

        self.states: list[str] | None = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.states is None or self.path != "/v1/models/kvasir":
                    body, code = b'{"error": "Servable not found for request: Latest(kvasir)"}', 404
                else:
                    body, code = json.dumps({"model_version_status": [
                        {"version": "1", "state": s, "status": {"error_code": "OK", "error_message": ""}}
                        for s in outer.states]}).encode(), 200
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_ready_only_once_tf_serving_has_a_version_of_the_model_available() -> None:
    tf_serving = _FakeTFServing()
    health = sync_models.serve_health(0, sync_models.serving_readiness(tf_serving.url, "kvasir"))
    base = f"http://127.0.0.1:{health.server_port}"
    try:
        assert _get(base + "/ready")[0] == 503  # TF Serving has not loaded it: 404
        tf_serving.states = ["LOADING"]
        assert _get(base + "/ready")[0] == 503
        tf_serving.states = ["AVAILABLE"]
        code, body = _get(base + "/ready")
        assert code == 200 and "AVAILABLE" in body
        code, body = _get(base + "/metrics")  # the same port still serves the sidecar's metrics
        assert code == 200 and "saga_sync_versions_total" in body
        tf_serving.server.shutdown()
        tf_serving.server.server_close()
        assert _get(base + "/ready")[0] == 503  # TF Serving gone
    finally:
        health.shutdown()
        health.server_close()


def test_without_a_server_to_ask_ready_means_a_version_is_on_the_volume(bucket, tmp_path: Path) -> None:
    client, name = bucket
    sync = sync_models.ModelSync(client, name, "models", "kvasir", tmp_path, keep=2)
    ready = sync_models.volume_readiness(sync)
    assert not ready()[0]
    _upload_version(client, name, 5, {**SAVED_MODEL, **_marker(sorted(SAVED_MODEL))})
    sync.poll()
    assert ready() == (True, "versions on the volume: [5]")
