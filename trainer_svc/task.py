"""The trial task a worker receives with a lease: the trial contract's model (trial_contract.task,
docs/TRIAL_TASK.md), parsed at the door so a bad task fails with the field named instead of deep
inside TensorFlow."""
from __future__ import annotations

from typing import Any

from trial_contract import ContractError
from trial_contract import parse_task as _parse
from trial_contract.metrics import StepName
from trial_contract.recipe import Recipe as TrainingRecipe
from trial_contract.registry import OPTIMIZERS
from trial_contract.task import (DEFAULT_RELATIVE_DELIMITER, DelimitingLayer, ModelSpec, Objective, StartFrom,
                                 StepSpec, TaskDataset as DatasetRef, TrialTask)
from trainer_svc.errors import InvalidTask

__all__ = ["DEFAULT_RELATIVE_DELIMITER", "OPTIMIZERS", "DatasetRef", "DelimitingLayer", "ModelSpec", "Objective",
           "StartFrom", "StepName", "StepSpec", "TrainingRecipe", "TrialTask", "parse_task"]


def parse_task(data: str | bytes | dict[str, Any]) -> TrialTask:
    """Parses a task (JSON text or an already decoded object); raises :class:`InvalidTask`."""
    try:
        return _parse(data)
    except ContractError as e:
        raise InvalidTask(e.field, e.message) from None
