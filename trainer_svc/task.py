"""The trial task a worker receives with a lease (docs/TRIAL_TASK.md), parsed into typed,
validated dataclasses. Every check names the offending field so a bad task fails loudly at the
door instead of deep inside TensorFlow."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from trainer_svc.errors import InvalidTask

StepName = Literal["head", "finetune"]
OPTIMIZERS = ("SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "Adamax", "Nadam", "AdamW")
# The seed fine-tunes from 2/3 of the base model's layers until the layer phase picks the layer.
DEFAULT_RELATIVE_DELIMITER = 2 / 3


@dataclass(frozen=True)
class DatasetRef:
    uri: str
    train: str = "train"
    validation: str = "validation"
    test: str = "test"  # "" when the dataset has no held-out test split


@dataclass(frozen=True)
class ModelSpec:
    backbone: str
    weights: str | None  # "imagenet", None (random init) or an object URI
    image_size: int
    family: str = "transfer"
    pooling: str = "max"
    # Extra keyword arguments of the keras.applications constructor, e.g. {"alpha": 0.35}.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DelimitingLayer:
    """Where fine-tuning starts: an absolute base-layer index or a relative depth in [0, 1]."""

    index: int | None = None
    relative: float | None = None

    def resolve(self, base_layers: int) -> int:
        """The absolute index in a base model of ``base_layers`` layers (clamped to its length)."""
        if self.index is not None:
            return min(self.index, base_layers)
        assert self.relative is not None
        return min(math.floor(self.relative * base_layers), base_layers)


@dataclass(frozen=True)
class StepSpec:
    name: StepName
    optimizer: str
    learning_rate: float
    max_epochs: int
    delimiting_layer: DelimitingLayer | None = None  # set for "finetune" only


@dataclass(frozen=True)
class StartFrom:
    trial_id: str
    artifact: str
    uri: str


@dataclass(frozen=True)
class TrainingRecipe:
    batch_size: int = 16
    horizontal_flip: bool = True
    vertical_flip: bool = True
    raw: dict[str, Any] = field(default_factory=dict)  # passed through unchanged


@dataclass(frozen=True)
class Objective:
    metric: str = "val_accuracy"
    goal: Literal["maximize", "minimize"] = "maximize"


@dataclass(frozen=True)
class TrialTask:
    study_id: str
    trial_id: str
    attempt: int
    dataset: DatasetRef
    model: ModelSpec
    steps: tuple[StepSpec, ...]
    training: TrainingRecipe
    objective: Objective
    seed: int
    artifacts_uri: str
    start_from: StartFrom | None = None
    phase_index: int = 0
    phase_name: str = ""


def parse_task(data: str | bytes | dict[str, Any]) -> TrialTask:
    """Parses a task (JSON text or an already decoded object); raises :class:`InvalidTask`."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidTask("<task>", f"not valid JSON: {exc}") from None
    obj = _obj(data, "<task>")
    dataset = _obj(obj.get("dataset"), "dataset")
    phase = _obj(obj.get("phase", {}), "phase")
    start = obj.get("start_from")
    return TrialTask(
        study_id=_str(obj, "study_id", "study_id"),
        trial_id=_str(obj, "trial_id", "trial_id"),
        attempt=_int(obj, "attempt", "attempt", default=1, minimum=1),
        phase_index=_int(phase, "index", "phase.index", default=0, minimum=0),
        phase_name=_str(phase, "name", "phase.name", default=""),
        dataset=DatasetRef(
            uri=_str(dataset, "uri", "dataset.uri"),
            train=_str(dataset, "train", "dataset.train", default="train"),
            validation=_str(dataset, "validation", "dataset.validation", default="validation"),
            # null: the dataset has no held-out test split
            test="" if dataset.get("test", "test") is None
            else _str(dataset, "test", "dataset.test", default="test"),
        ),
        model=_model(_obj(obj.get("model"), "model")),
        steps=_steps(obj.get("steps")),
        start_from=None if start is None else _start_from(_obj(start, "start_from")),
        training=_training(_obj(obj.get("training", {}), "training")),
        objective=_objective(_obj(obj.get("objective", {}), "objective")),
        seed=_int(obj, "seed", "seed", default=0, minimum=0),
        artifacts_uri=_str(obj, "artifacts_uri", "artifacts_uri"),
    )


def _model(m: dict[str, Any]) -> ModelSpec:
    family = _str(m, "family", "model.family", default="transfer")
    if family != "transfer":
        raise InvalidTask("model.family", f"only 'transfer' is supported, got {family!r}")
    pooling = _str(m, "pooling", "model.pooling", default="max")
    if pooling not in ("max", "avg"):
        raise InvalidTask("model.pooling", f"must be 'max' or 'avg', got {pooling!r}")
    options = _obj(m.get("options", {}), "model.options")
    if "weights" in options or "include_top" in options or "input_shape" in options:
        raise InvalidTask("model.options", "weights, include_top and input_shape are set by Saga")
    weights = m.get("weights")
    if weights is not None and (not isinstance(weights, str) or not weights):
        raise InvalidTask("model.weights", "must be 'imagenet', null or an object URI")
    return ModelSpec(
        family=family,
        backbone=_str(m, "backbone", "model.backbone"),
        weights=weights,
        image_size=_int(m, "image_size", "model.image_size", default=299, minimum=32, maximum=1024),
        pooling=pooling,
        options=dict(options),
    )


def _steps(raw: Any) -> tuple[StepSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidTask("steps", "must be a non-empty list")
    steps = []
    for i, item in enumerate(raw):
        where = f"steps[{i}]"
        s = _obj(item, where)
        name = _str(s, "name", f"{where}.name")
        if name not in ("head", "finetune"):
            raise InvalidTask(f"{where}.name", f"must be 'head' or 'finetune', got {name!r}")
        opt = _str(s, "optimizer", f"{where}.optimizer")
        if opt not in OPTIMIZERS:
            raise InvalidTask(f"{where}.optimizer", f"{opt!r} is not one of {', '.join(OPTIMIZERS)}")
        lr = s.get("learning_rate")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise InvalidTask(f"{where}.learning_rate", f"must be a finite number > 0, got {lr!r}")
        delimiter = None
        if name == "finetune":
            delimiter = _delimiter(s.get("delimiting_layer"), f"{where}.delimiting_layer")
        elif s.get("delimiting_layer") is not None:
            raise InvalidTask(f"{where}.delimiting_layer", "only a 'finetune' step has one")
        steps.append(StepSpec(name=name, optimizer=opt, learning_rate=float(lr),
                              max_epochs=_int(s, "max_epochs", f"{where}.max_epochs", minimum=1),
                              delimiting_layer=delimiter))
    names = [s.name for s in steps]
    if len(set(names)) != len(names) or names == ["finetune", "head"]:
        raise InvalidTask("steps", f"must be 'head', 'finetune' or both in that order, got {names}")
    return tuple(steps)


def _delimiter(raw: Any, where: str) -> DelimitingLayer:
    if raw is None:
        return DelimitingLayer(relative=DEFAULT_RELATIVE_DELIMITER)
    d = _obj(raw, where)
    if set(d) == {"index"}:
        return DelimitingLayer(index=_int(d, "index", f"{where}.index", minimum=0))
    if set(d) == {"relative"}:
        r = d["relative"]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 <= r <= 1.0:
            raise InvalidTask(f"{where}.relative", f"must be a number in [0, 1], got {r!r}")
        return DelimitingLayer(relative=float(r))
    raise InvalidTask(where, f"must hold exactly one of 'index' or 'relative', got {sorted(d)}")


def _start_from(s: dict[str, Any]) -> StartFrom:
    return StartFrom(trial_id=_str(s, "trial_id", "start_from.trial_id", default=""),
                     artifact=_str(s, "artifact", "start_from.artifact", default="head_checkpoint"),
                     uri=_str(s, "uri", "start_from.uri"))


def _training(t: dict[str, Any]) -> TrainingRecipe:
    aug = _obj(t.get("augmentation", {}), "training.augmentation")
    flips = {}
    for key in ("horizontal_flip", "vertical_flip"):
        value = aug.get(key, True)
        if not isinstance(value, bool):
            raise InvalidTask(f"training.augmentation.{key}", f"must be true or false, got {value!r}")
        flips[key] = value
    return TrainingRecipe(
        batch_size=_int(t, "batch_size", "training.batch_size", default=16, minimum=1, maximum=4096),
        raw=dict(t), **flips)


def _objective(o: dict[str, Any]) -> Objective:
    metric = _str(o, "metric", "objective.metric", default="val_accuracy")
    if not metric.startswith("val_"):
        raise InvalidTask("objective.metric", f"must be a validation metric (val_*), got {metric!r}")
    goal = _str(o, "goal", "objective.goal", default="maximize")
    if goal not in ("maximize", "minimize"):
        raise InvalidTask("objective.goal", f"must be 'maximize' or 'minimize', got {goal!r}")
    return Objective(metric=metric, goal=goal)  # type: ignore[arg-type]


_MISSING = object()


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidTask(where, f"must be an object, got {type(value).__name__}")
    return value


def _str(obj: dict[str, Any], key: str, where: str, default: Any = _MISSING) -> str:
    value = obj.get(key, default)
    if value is _MISSING:
        raise InvalidTask(where, "is required")
    if not isinstance(value, str) or (default is _MISSING and not value):
        raise InvalidTask(where, f"must be a non-empty string, got {value!r}")
    return value


def _int(obj: dict[str, Any], key: str, where: str, default: Any = _MISSING,
         minimum: int | None = None, maximum: int | None = None) -> int:
    value = obj.get(key, default)
    if value is _MISSING:
        raise InvalidTask(where, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTask(where, f"must be an integer, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidTask(where, f"must be in [{minimum}, {maximum if maximum is not None else '∞'}], got {value}")
    return value
