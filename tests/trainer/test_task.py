"""Parsing the trial task: the documented example parses; each bad field is named."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from trainer_svc.errors import InvalidTask
from trainer_svc.task import DelimitingLayer, parse_task

EXAMPLE: dict[str, Any] = {
    "study_id": "st-1", "trial_id": "tr-1", "attempt": 1,
    "phase": {"index": 0, "name": "search"},
    "dataset": {"uri": "s3://saga/datasets/kvasir", "train": "train", "validation": "validation",
                "test": "test"},
    "model": {"family": "transfer", "backbone": "InceptionV3", "weights": "imagenet",
              "image_size": 299, "pooling": "max"},
    "steps": [
        {"name": "head", "optimizer": "Adam", "learning_rate": 0.001, "max_epochs": 10},
        {"name": "finetune", "optimizer": "Nadam", "learning_rate": 0.5, "max_epochs": 50,
         "delimiting_layer": {"relative": 0.6667}},
    ],
    "start_from": None,
    "training": {"batch_size": 16, "augmentation": {"horizontal_flip": True, "vertical_flip": False}},
    "objective": {"metric": "val_accuracy", "goal": "maximize"},
    "seed": 42,
    "artifacts_uri": "s3://saga/studies/st-1/trials/tr-1",
}


def test_documented_example_parses_from_json() -> None:
    task = parse_task(json.dumps(EXAMPLE))
    assert task.model.backbone == "InceptionV3" and task.model.weights == "imagenet"
    assert [s.name for s in task.steps] == ["head", "finetune"]
    assert task.steps[1].optimizer == "Nadam" and task.steps[1].learning_rate == 0.5
    assert task.steps[1].delimiting_layer == DelimitingLayer(relative=0.6667)
    assert task.training.batch_size == 16
    assert task.training.horizontal_flip and not task.training.vertical_flip
    assert task.dataset.test == "test" and task.seed == 42 and task.start_from is None


def test_start_from_and_missing_test_split() -> None:
    raw = copy.deepcopy(EXAMPLE)
    raw["steps"] = raw["steps"][1:]
    raw["start_from"] = {"trial_id": "tr-0", "artifact": "head_checkpoint", "uri": "s3://saga/x/head.keras"}
    raw["dataset"]["test"] = None
    task = parse_task(raw)
    assert task.start_from is not None and task.start_from.uri == "s3://saga/x/head.keras"
    assert [s.name for s in task.steps] == ["finetune"] and task.dataset.test is None


@pytest.mark.parametrize("index,relative,layers,expected", [
    (None, 0.6667, 100, 66), (None, 1.0, 100, 100), (None, 0.0, 100, 0), (7, None, 100, 7),
    (500, None, 100, 100)])
def test_delimiting_layer_resolves(index: int | None, relative: float | None, layers: int,
                                   expected: int) -> None:
    assert DelimitingLayer(index=index, relative=relative).resolve(layers) == expected


def _with(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(EXAMPLE)
    node: Any = raw
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is KeyError:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return raw


@pytest.mark.parametrize("path,value,field", [
    ("trial_id", KeyError, "trial_id"),
    ("dataset.uri", "", "dataset.uri"),
    ("model.backbone", 3, "model.backbone"),
    ("model.image_size", 8, "model.image_size"),
    ("model.image_size", 299.5, "model.image_size"),
    ("model.weights", "", "model.weights"),
    ("model.family", "scratch", "model.family"),
    ("steps", [], "steps"),
    ("steps.0.name", "warmup", "steps[0].name"),
    ("steps.0.optimizer", "LBFGS", "steps[0].optimizer"),
    ("steps.1.learning_rate", 0, "steps[1].learning_rate"),
    ("steps.1.learning_rate", float("nan"), "steps[1].learning_rate"),
    ("steps.0.max_epochs", 0, "steps[0].max_epochs"),
    ("steps.1.delimiting_layer", {"relative": 1.5}, "steps[1].delimiting_layer.relative"),
    ("steps.1.delimiting_layer", {"index": -1}, "steps[1].delimiting_layer.index"),
    ("steps.1.delimiting_layer", {"index": 3, "relative": 0.5}, "steps[1].delimiting_layer"),
    ("steps.0.delimiting_layer", {"index": 3}, "steps[0].delimiting_layer"),
    ("training.batch_size", "16", "training.batch_size"),
    ("training.augmentation", {"vertical_flip": "yes"}, "training.augmentation.vertical_flip"),
    ("objective.metric", "accuracy", "objective.metric"),
    ("start_from", {"trial_id": "tr-0"}, "start_from.uri"),
    ("model.options", {"weights": None}, "model.options.weights"),
])
def test_bad_field_is_named(path: str, value: Any, field: str) -> None:
    with pytest.raises(InvalidTask) as info:
        parse_task(_with(path, value))
    assert info.value.field == field
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)


def test_steps_out_of_order_or_repeated_are_refused() -> None:
    raw = copy.deepcopy(EXAMPLE)
    raw["steps"] = list(reversed(raw["steps"]))
    with pytest.raises(InvalidTask, match="steps"):
        parse_task(raw)
    raw["steps"] = [EXAMPLE["steps"][0], EXAMPLE["steps"][0]]
    with pytest.raises(InvalidTask, match="steps"):
        parse_task(raw)


def test_bad_json_is_refused() -> None:
    with pytest.raises(InvalidTask, match="JSON"):
        parse_task("{not json")
    with pytest.raises(InvalidTask, match="object"):
        parse_task("[1, 2]")
