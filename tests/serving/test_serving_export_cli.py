"""`saga export` asks the optimizer (real gRPC) for the best trial and exports it to S3 (moto),
from where the server loads it."""
from __future__ import annotations

import json
from concurrent import futures

import grpc
import numpy as np
import pytest

from datastore import open_store
from saga.cli.main import main
from saga.v1 import optimizer_pb2, optimizer_pb2_grpc
from serving.layout import CARD, open_model_base
from serving.registry import ModelRegistry
from tests.s3server import s3_env, start_s3_server
from tests.serving.helpers import CLASSES, make_images, png, reference


class _Optimizer(optimizer_pb2_grpc.OptimizerServicer):
    def __init__(self, trial: optimizer_pb2.Trial) -> None:
        self.trial = trial

    def GetBestTrial(self, request, context):  # noqa: N802
        if request.study_id != self.trial.study_id:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such study")
        return optimizer_pb2.GetBestTrialResponse(trial=self.trial)


@pytest.fixture
def s3(monkeypatch):
    endpoint, stop = start_s3_server()
    for key, value in s3_env(endpoint).items():
        monkeypatch.setenv(key, value)
    yield
    stop()


def test_export_best_trial_to_s3_and_serve_it(model, tmp_path, s3, capsys) -> None:
    trial_dir, dataset_dir = tmp_path / "trial", tmp_path / "dataset"
    trial_dir.mkdir()
    model.save(trial_dir / "model.keras")
    open_store(str(dataset_dir)).put_bytes("manifest.json", json.dumps({"classes": list(CLASSES)}).encode())
    trial = optimizer_pb2.Trial(
        id="tr-1", study_id="st-1", metrics={"val_accuracy": 0.9, "test_accuracy": 0.8, "loss": 0.3},
        artifacts={"checkpoint": str(trial_dir / "model.keras")},
        task_json=json.dumps({"model": {"backbone": "MobileNetV2", "image_size": 32},
                              "dataset": {"uri": str(dataset_dir)}}))
    trial.parameters["learning_rate"].float_value = 0.001
    server = grpc.server(futures.ThreadPoolExecutor(2))
    optimizer_pb2_grpc.add_OptimizerServicer_to_server(_Optimizer(trial), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert main(["export", "st-1", "--model-name", "kvasir", "--to", "s3://models/base",
                     "--optimizer", f"127.0.0.1:{port}"]) == 0, capsys.readouterr().out
        assert main(["export", "st-404", "--model-name", "kvasir", "--to", "s3://models/base",
                     "--optimizer", f"127.0.0.1:{port}"]) == 1
        assert "NOT_FOUND" in capsys.readouterr().err
    finally:
        server.stop(0)
    base = open_model_base("s3://models/base")
    assert base.versions("kvasir") == [1]
    card = json.loads(base.read_text("kvasir", 1, CARD))
    assert card["trial_id"] == "tr-1" and card["validation_metrics"] == {"val_accuracy": 0.9}
    assert card["test_metrics"] == {"test_accuracy": 0.8} and card["parameters"] == {"learning_rate": 0.001}
    assert len(card["dataset"]["manifest_sha256"]) == 64 and card["class_names"] == list(CLASSES)
    registry = ModelRegistry(base, ["kvasir"], cache_dir=tmp_path / "cache")
    registry.refresh()
    loaded = registry.get("kvasir")
    images, _ = make_images(2, seed=31)
    signature = loaded.signature(None)
    out = loaded.run(signature, {"image_bytes": np.array([png(i) for i in images], dtype=object)})
    np.testing.assert_allclose(out["probabilities"], reference(model, images), atol=1e-5)
