"""A study to report on, without TensorFlow: a worker thread that trains with ``tests.optimizer.cheap``'s
objective over real gRPC, with learning curves that plateau (so early stopping ends steps), one trial in
four hopeless (so nonconvergence filtering stops it) and trial 2 infeasible."""
from __future__ import annotations

import json
import time

from optimizer_svc.client import parameters
from tests.optimizer.cheap import CheapWorker, objective


def curve(final: float, epoch: int) -> float:
    """Rises to ``final`` in three epochs, then stays: no improvement from the fourth epoch on."""
    return final * min(epoch + 1, 3) / 3


class PlateauWorker(CheapWorker):
    """Runs up to ``epochs`` epochs per step; stops after ``max_trials`` trials when given (leaving the
    last one leased and unfinished, to make a running study)."""

    def __init__(self, *args, max_trials: int | None = None, **kw):
        super().__init__(*args, **kw)
        self.max_trials = max_trials

    def train(self, trial, lease) -> None:
        task = json.loads(trial.task_json)
        final = 0.2 if trial.number % 4 == 3 else objective(parameters(trial))
        if trial.number == 2:
            self.client.complete_trial(trial.id, lease.id, "INFEASIBLE", error="loss became NaN")
            return
        hold = self.max_trials is not None and len(self.ran) > self.max_trials
        decision = "continue"
        for step in task["steps"]:
            for epoch in range(step["max_epochs"]):
                time.sleep(0.01)
                decision, _ = self.client.report_progress(trial.id, lease.id, step["name"], epoch,
                                                          {"val_accuracy": curve(final, epoch)})
                if decision != "continue" or (hold and epoch == 1):
                    break
            if decision == "stop_trial" or hold:
                break
        if hold:  # keep the lease: the trial stays RUNNING
            self.stopped.set()
            return
        artifacts = {"checkpoint": f"s3://test-artifacts/{trial.id}/model.keras"}
        if task["steps"][0]["name"] == "head":
            artifacts["head_checkpoint"] = f"s3://test-artifacts/{trial.id}/head.keras"
        self.client.complete_trial(trial.id, lease.id, "SUCCEEDED", artifacts=artifacts,
                                   metrics={"base_layers": float(self.base_layers), "gpus": 1.0})
