"""A cheap objective of the parameters and a worker thread that "trains" with it over gRPC.

The objective stands in for training: a smooth function of backbone, optimizer, learning rate and
delimiting layer, reported epoch by epoch like a learning curve, so every rule of the service
(phases, stopping, leases) is exercised without TensorFlow.
"""
from __future__ import annotations

import json
import math
import threading
from typing import Any

from optimizer_svc.client import OptimizerClient, parameters
from saga.v1 import optimizer_pb2 as pb

BACKBONE_SCORE = {"Xception": 0.80, "VGG16": 0.62, "VGG19": 0.60, "ResNet50": 0.75, "InceptionV3": 0.78,
                  "InceptionResNetV2": 0.86, "DenseNet121": 0.77, "DenseNet169": 0.79, "DenseNet201": 0.81}


def objective(p: dict[str, Any]) -> float:
    """Accuracy in (0, 1): best near lr 0.01, Adam-like optimizers, a delimiting layer deep in the model."""
    base = BACKBONE_SCORE.get(p.get("backbone"), 0.7)
    lrs = [v for k, v in p.items() if k.endswith("learning_rate")]
    lr_pen = sum(abs(math.log10(max(lr, 1e-6)) + 2.0) for lr in lrs) / max(len(lrs), 1) * 0.08
    opts = [v for k, v in p.items() if k.endswith("optimizer")]
    opt_bonus = sum(0.05 if o in ("Adam", "Nadam", "Adamax") else 0.0 for o in opts) / max(len(opts), 1)
    layer = p.get("delimiting_layer")
    layer_pen = 0.0
    if isinstance(layer, int):
        layer_pen = abs(layer - 40) / 400
    elif isinstance(layer, float):
        layer_pen = abs(layer - 0.6) / 4
    return max(0.05, min(0.99, base + opt_bonus - lr_pen - layer_pen))


class CheapWorker(threading.Thread):
    """Leases trials until the study ends; reports ``epochs`` epochs per step; obeys stop decisions."""

    def __init__(self, target: str, study_id: str, name: str, epochs: int = 3, base_layers: int = 100):
        super().__init__(name=name, daemon=True)
        self.client = OptimizerClient(target)
        self.study_id, self.epochs, self.base_layers = study_id, epochs, base_layers
        self.ran: list[str] = []
        self.error: BaseException | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                study = self.client.get_study(self.study_id)
                if study.state != pb.STUDY_ACTIVE:
                    return
                got = self.client.lease_trial(self.name, study_id=self.study_id, wait=1.0)
                if got is None:
                    continue
                trial, lease = got
                self.ran.append(trial.id)
                self.train(trial, lease)
        except BaseException as e:  # surfaced by the test
            self.error = e
        finally:
            self.client.close()

    def train(self, trial, lease) -> None:
        task = json.loads(trial.task_json)
        final = objective(parameters(trial))
        for step in task["steps"]:
            decision = "continue"
            for epoch in range(self.epochs):
                acc = final * (epoch + 1) / self.epochs
                decision, _ = self.client.report_progress(trial.id, lease.id, step["name"], epoch,
                                                          {"val_accuracy": acc, "loss": 1 - acc})
                if decision != "continue":
                    break
            if decision == "stop_trial":
                break
        artifacts = {"checkpoint": f"s3://test-artifacts/{trial.id}/model.keras"}
        if task["steps"][0]["name"] == "head":
            artifacts["head_checkpoint"] = f"s3://test-artifacts/{trial.id}/head.keras"
        self.client.complete_trial(trial.id, lease.id, "SUCCEEDED",
                                   metrics={"base_layers": float(self.base_layers), "test_accuracy": final},
                                   artifacts=artifacts)
