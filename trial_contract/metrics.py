"""The metrics a trainer reports after every epoch, and which of them a study may optimize.

Keras names them: ``loss`` and ``accuracy`` on the training split, ``val_loss`` and
``val_accuracy`` on the validation split. The objective is a validation metric (the test split is
held out and never optimized); the stopping rules may watch any of the four.
"""
from __future__ import annotations

from typing import Literal

Goal = Literal["maximize", "minimize"]
StepName = Literal["head", "finetune"]

EPOCH_METRICS: dict[str, Goal] = {"val_accuracy": "maximize", "val_loss": "minimize",
                                  "accuracy": "maximize", "loss": "minimize"}
OBJECTIVE_METRICS: dict[str, Goal] = {k: v for k, v in EPOCH_METRICS.items() if k.startswith("val_")}
STEPS: tuple[str, ...] = ("head", "finetune")
# The roles of a dataset's splits and their default names in the manifest (datastore.manifest).
SPLIT_ROLES: tuple[str, ...] = ("train", "validation", "test")


def head_metric(metric: str) -> str:
    """The name under which a trial stores the head step's best value of ``metric``."""
    return f"head_{metric}"


def lower_is_better(metric: str) -> bool:
    return EPOCH_METRICS.get(metric) == "minimize" or "loss" in metric or "error" in metric
