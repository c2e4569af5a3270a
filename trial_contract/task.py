"""The trial task: what a worker receives with a lease (docs/TRIAL_TASK.md).

The optimizer builds it (``optimizer_svc.strategies.build_task``) through these models, and the
trainer parses it with :func:`parse_task`, so a task the optimizer hands out is one a trainer runs.
"""
from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_serializer, model_validator

from .base import VERSION, Positional, Strict
from .errors import ContractError, from_validation_error
from .limits import MAX_DEPTH, MAX_EPOCHS, MAX_IMAGE_SIZE, MAX_LEARNING_RATE, MAX_NAME, MAX_SEED, depth
from .metrics import OBJECTIVE_METRICS, Goal, StepName
from .recipe import Recipe
from .registry import BACKBONES, OPTIMIZERS, unknown_name
from .study import check_options, check_weights
from .uris import check_store_uri

# Artifacts the optimizer uses by name: the exported model, and what later phases start from.
TASK_ARTIFACTS = ("checkpoint", "head_checkpoint")
# The seed fine-tunes from 2/3 of the base model's layers until the layer phase picks the layer.
DEFAULT_RELATIVE_DELIMITER = 2 / 3


class Phase(Strict):
    index: int = Field(0, ge=0)
    name: str = Field("", max_length=MAX_NAME)


class TaskDataset(Strict):
    uri: str
    train: str = Field("train", min_length=1, max_length=MAX_NAME)
    validation: str = Field("validation", min_length=1, max_length=MAX_NAME)
    test: str | None = Field("test", min_length=1, max_length=MAX_NAME)  # None: no held-out test split
    manifest_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")   # pinned at study creation

    _uri = field_validator("uri")(lambda v: check_store_uri(v, "the dataset URI"))


class ModelSpec(Strict):
    backbone: str
    weights: str | None = "imagenet"   # "imagenet", None (random init) or a store URI of a weights file
    image_size: int = Field(299, ge=1, le=MAX_IMAGE_SIZE)
    family: Literal["transfer"] = "transfer"
    pooling: Literal["max", "avg"] = "max"
    options: dict[str, Any] = Field(default_factory=dict)  # keyword arguments of the Keras constructor

    _weights = field_validator("weights")(check_weights)
    _options = field_validator("options")(check_options)

    @field_validator("backbone")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in BACKBONES:
            raise ValueError(unknown_name("backbone", v, BACKBONES))
        return v

    @model_validator(mode="after")
    def _size_fits(self) -> "ModelSpec":
        low = BACKBONES[self.backbone].min_size
        if self.image_size < low:
            raise ValueError(f"image_size: {self.backbone} needs inputs of at least {low} px, got {self.image_size}")
        return self


class DelimitingLayer(Positional, Strict):
    """Where fine-tuning starts: an absolute base-layer index or a relative depth in [0, 1]."""

    index: int | None = Field(None, ge=0)
    relative: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _exactly_one(self) -> "DelimitingLayer":
        if (self.index is None) == (self.relative is None):
            raise ValueError("must hold exactly one of 'index' or 'relative'")
        return self

    @model_serializer
    def _one_key(self) -> dict[str, int | float]:
        return {"index": self.index} if self.index is not None else {"relative": self.relative}

    def resolve(self, base_layers: int) -> int:
        """The absolute index in a base model of ``base_layers`` layers (clamped to its length)."""
        if self.index is not None:
            return min(self.index, base_layers)
        assert self.relative is not None
        return min(math.floor(self.relative * base_layers), base_layers)


class StepSpec(Positional, Strict):
    name: StepName
    optimizer: str
    learning_rate: float = Field(gt=0.0, le=MAX_LEARNING_RATE)
    max_epochs: int = Field(ge=1, le=MAX_EPOCHS)
    delimiting_layer: DelimitingLayer | None = None  # "finetune" only; None there means 2/3 of the depth

    @field_validator("optimizer")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in OPTIMIZERS:
            raise ValueError(unknown_name("optimizer", v, OPTIMIZERS))
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_layer(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") == "finetune" and data.get("delimiting_layer") is None:
            data = {**data, "delimiting_layer": {"relative": DEFAULT_RELATIVE_DELIMITER}}
        return data

    @model_validator(mode="after")
    def _layer(self) -> "StepSpec":
        if self.name == "head" and self.delimiting_layer is not None:
            raise ValueError("delimiting_layer: only a 'finetune' step has one")
        return self


class StartFrom(Strict):
    uri: str
    trial_id: str = ""
    artifact: str = "head_checkpoint"

    _uri = field_validator("uri")(lambda v: check_store_uri(v, "start_from.uri"))


class Objective(Positional, Strict):
    """What a trial scores: the best ``metric`` over the epochs of ``step`` (thesis 3.4.7)."""

    metric: str = "val_accuracy"
    goal: Goal = "maximize"
    step: StepName | None = None   # None: the task's last step

    @field_validator("metric")
    @classmethod
    def _reportable(cls, v: str) -> str:
        if v not in OBJECTIVE_METRICS:
            raise ValueError(unknown_name("objective metric", v, OBJECTIVE_METRICS))
        return v


class TrialTask(Strict):
    version: int = Field(VERSION, ge=1)
    study_id: str = Field(min_length=1, max_length=MAX_NAME)
    trial_id: str = Field(min_length=1, max_length=MAX_NAME)
    attempt: int = Field(1, ge=1)
    phase: Phase = Phase()
    dataset: TaskDataset
    model: ModelSpec
    steps: list[StepSpec] = Field(min_length=1, max_length=2)
    start_from: StartFrom | None = None
    training: Recipe = Recipe()
    objective: Objective = Objective()
    seed: int = Field(0, ge=0, le=MAX_SEED)
    artifacts_uri: str = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _understood(cls, v: int) -> int:
        if v > VERSION:
            raise ValueError(f"task version {v} is newer than this trainer understands ({VERSION}); "
                             "upgrade the trainer")
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_scored_step(cls, data: Any) -> Any:
        """Without ``objective.step`` the last step scores (every strategy's rule, docs/TRIAL_TASK.md)."""
        if not isinstance(data, dict):
            return data
        objective, steps = data.get("objective", {}), data.get("steps")
        if (isinstance(objective, dict) and objective.get("step") is None and isinstance(steps, list) and steps
                and isinstance(steps[-1], dict) and isinstance(steps[-1].get("name"), str)):
            data = {**data, "objective": {**objective, "step": steps[-1]["name"]}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "TrialTask":
        names = [s.name for s in self.steps]
        if names not in (["head"], ["finetune"], ["head", "finetune"]):
            raise ValueError(f"steps: must be 'head', 'finetune' or both in that order, got {names}")
        if self.objective.step is not None and self.objective.step not in names:
            raise ValueError(f"objective.step: {self.objective.step!r} is not a step of this task ({names})")
        return self

    # Names the trainer used before the contract moved here.
    @property
    def phase_index(self) -> int:
        return self.phase.index

    @property
    def phase_name(self) -> str:
        return self.phase.name

    @property
    def scored_step(self) -> str:
        return self.objective.step or self.steps[-1].name

    def to_json(self) -> str:
        return self.model_dump_json()


def parse_task(data: str | bytes | dict[str, Any]) -> TrialTask:
    """A task from JSON text or a decoded object; :class:`ContractError` naming the bad field."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError("<task>", f"not valid JSON: {exc}") from None
        except RecursionError:
            raise ContractError("<task>", f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise ContractError("<task>", f"must be an object, got {type(data).__name__}")
    if depth(data) > MAX_DEPTH:
        raise ContractError("<task>", f"nested deeper than {MAX_DEPTH} levels")
    try:
        return TrialTask.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, root="<task>") from None
