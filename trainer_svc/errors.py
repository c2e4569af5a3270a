"""Errors of the trainer core, in one place so the worker maps each to one trial outcome."""
from __future__ import annotations


class TrainerError(Exception):
    """Base class of trainer-core errors."""


class InvalidTask(TrainerError, ValueError):
    """The trial task is malformed; ``field`` names the offending entry (e.g. ``steps[1].optimizer``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"task field {field!r}: {message}")
        self.field = field


class InfeasibleTrial(TrainerError):
    """These parameters cannot train (NaN loss, out of memory): retrying would fail the same way,
    so the worker completes the trial as OUTCOME_INFEASIBLE."""


class DatasetError(TrainerError, ValueError):
    """The dataset is unusable for training (no images, no classes, a label out of range)."""


class WeightsError(TrainerError, ValueError):
    """A weights file or checkpoint does not fit the model it should be loaded into."""
