"""run_task end to end on a local object store: dataset sync, transfer weights from the store,
training, evaluation, uploaded artifacts, and resuming from a head checkpoint."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from datastore import open_store
from datastore.local_store import LocalStore
from trainer_svc.errors import DatasetError, InvalidTask, WeightsError
from trainer_svc.models import base_layer_count, build_model, load_checkpoint
from trainer_svc.runner import TrialResult, run_task
from trainer_svc.task import parse_task

BACKBONE = "VGG16"  # few layers: fast to trace on a 2-core machine


def _task(dataset_uri: str, artifacts_uri: str, **changes: Any) -> dict[str, Any]:
    task = {
        "study_id": "st-1", "trial_id": "tr-1", "attempt": 1, "phase": {"index": 0, "name": "search"},
        "dataset": {"uri": dataset_uri, "train": "train", "validation": "validation", "test": "test"},
        "model": {"family": "transfer", "backbone": BACKBONE, "weights": None, "image_size": 32},
        "steps": [{"name": "head", "optimizer": "Adam", "learning_rate": 0.01, "max_epochs": 2}],
        "start_from": None,
        "training": {"batch_size": 8, "augmentation": {"horizontal_flip": True, "vertical_flip": True}},
        "objective": {"metric": "val_accuracy", "goal": "maximize"},
        "seed": 7, "artifacts_uri": artifacts_uri,
    }
    task.update(changes)
    return task


def _base_weights(model: keras.Model) -> list[np.ndarray]:
    return [w for layer in model.layers[:base_layer_count(model)] for w in layer.get_weights()]


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def pretrained(store_root: Path, splits: dict[str, list[tuple[str, int]]]) -> tuple[str, list[np.ndarray]]:
    """A short pre-training on other labels (5 classes), saved to the store as a .keras model."""
    keras.utils.set_random_seed(3)
    model = build_model(BACKBONE, 5, 32)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.stack([np.asarray(keras.utils.load_img(p, target_size=(32, 32))) for p, _ in splits["train"]])
    y = np.arange(len(x)) % 5
    model.fit(x.astype("float32"), y, epochs=1, batch_size=10, verbose=0)
    local = store_root / "pretrained.keras"
    model.save(local)
    uri = LocalStore(store_root / "weights").put_file("vgg16-pretrained.keras", local)
    return uri, _base_weights(model)


@pytest.fixture(scope="module")
def first_trial(dataset_store, store_root: Path, pretrained, scripted,
                tmp_path_factory) -> tuple[TrialResult, Any]:
    reporter = scripted()
    # A recipe with every tunable the trainer applies (docs/TRIAL_TASK.md).
    recipe = {"batch_size": 8, "head_dropout": 0.25, "momentum": 0.5, "weight_decay": 1e-4, "label_smoothing": 0.1,
              "augmentation": {"horizontal_flip": True, "vertical_flip": True, "translate": 0.1, "rotate": 10.0,
                               "zoom": 0.1},
              "lr_schedule": "cosine"}
    task = parse_task(_task(dataset_store.uri, str(store_root / "trials" / "tr-1"),
                            model={"backbone": BACKBONE, "weights": pretrained[0], "image_size": 32},
                            training=recipe))
    work = tmp_path_factory.mktemp("work")
    result = run_task(task, open_store, reporter, work / "cache", work / "scratch")
    return result, reporter


def test_trial_uploads_artifacts_and_returns_flat_metrics(first_trial, store_root: Path) -> None:
    result, reporter = first_trial
    assert [(s, e) for s, e, _ in reporter.reports] == [("head", 0), ("head", 1)]
    best_val = max(m["val_accuracy"] for _, _, m in reporter.reports)
    assert result.objective_value == best_val == result.metrics["objective"]
    assert result.metrics["val_accuracy"] == pytest.approx(best_val)  # evaluated on the best checkpoint
    for key in ("test_accuracy", "val_macro_f1", "test_macro_f1", "val_mcc", "test_mcc"):
        assert 0.0 <= abs(result.metrics[key]) <= 1.0
    assert result.metrics["base_layers"] == 19.0  # VGG16 without top: input + 13 conv + 5 pool
    assert all(isinstance(v, float) and np.isfinite(v) for v in result.metrics.values())
    assert set(result.artifacts) == {"checkpoint", "head_checkpoint", "history", "tensorboard", "metrics"}
    trial = LocalStore(store_root / "trials" / "tr-1")
    keys = set(trial.list())
    assert {"model.keras", "head.keras", "history.csv", "metrics.json"} <= keys
    assert any(k.startswith("tensorboard/head/") for k in keys)
    assert result.artifacts["checkpoint"] == trial.uri_for("model.keras")
    assert result.artifacts["tensorboard"] == trial.uri_for("tensorboard")
    stored = json.loads(trial.get_bytes("metrics.json"))
    assert stored["summary"] == result.metrics
    assert stored["evaluation"]["test"]["classes"] == ["blue", "green", "red"]
    assert sum(map(sum, stored["evaluation"]["test"]["confusion_matrix"])) == 12
    rows = list(csv.DictReader(io.StringIO(trial.get_bytes("history.csv").decode())))
    assert len(rows) == 2


def test_the_trainer_applies_the_recipe(first_trial) -> None:
    """Dropout in the classification block, weight decay in the optimizer, label smoothing in the loss."""
    result, _ = first_trial
    path = Path(result.artifacts["checkpoint"])
    model = load_checkpoint(path)
    assert model.layers[-2].name == "saga_dropout" and model.layers[-2].rate == 0.25
    with zipfile.ZipFile(path) as archive:
        compiled = json.loads(archive.read("config.json"))["compile_config"]
    assert compiled["loss"]["config"]["label_smoothing"] == 0.1
    assert compiled["optimizer"]["config"]["weight_decay"] == pytest.approx(1e-4)
    assert "momentum" not in compiled["optimizer"]["config"]  # Adam keeps its betas
    # the cosine schedule: the step's 0.01 at its first epoch, half of it at the second (of 2)
    rows = list(csv.DictReader(io.StringIO(Path(result.artifacts["history"]).read_text())))
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.01, 0.005])


def test_transfer_weights_from_store_are_loaded_exactly(first_trial, pretrained, store_root: Path) -> None:
    # Only the head trained (base frozen), so the stored checkpoint's base must equal the
    # pre-trained base bit for bit.
    checkpoint = load_checkpoint(Path(store_root / "trials" / "tr-1" / "model.keras"))
    saved = pretrained[1]
    loaded = _base_weights(checkpoint)
    assert len(loaded) == len(saved) == 26
    assert all(np.array_equal(a, b) for a, b in zip(loaded, saved))


def test_start_from_head_checkpoint_skips_head_step(first_trial, dataset_store, store_root: Path, pretrained,
                                                    scripted, tmp_path: Path) -> None:
    head_uri = first_trial[0].artifacts["head_checkpoint"]
    head = load_checkpoint(Path(head_uri))
    reporter = scripted()
    task = parse_task(_task(
        dataset_store.uri, str(store_root / "trials" / "tr-2"),
        dataset={"uri": dataset_store.uri, "test": None},
        # a pre-trained backbone (weights null would train every layer)
        model={"backbone": BACKBONE, "weights": pretrained[0], "image_size": 32},
        steps=[{"name": "finetune", "optimizer": "SGD", "learning_rate": 0.001, "max_epochs": 1,
                "delimiting_layer": {"index": 15}}],
        start_from={"trial_id": "tr-1", "artifact": "head_checkpoint", "uri": head_uri}))
    result = run_task(task, open_store, reporter, tmp_path / "cache", tmp_path / "scratch")
    assert [(s, e) for s, e, _ in reporter.reports] == [("finetune", 0)]
    assert result.report["trainable_from"] == {"finetune": 15}
    assert "head_checkpoint" not in result.artifacts and "test_accuracy" not in result.metrics
    # layers before the delimiting layer stayed frozen: still the head checkpoint's weights
    tuned = load_checkpoint(Path(result.artifacts["checkpoint"]))
    for i in range(15):
        for a, b in zip(tuned.layers[i].get_weights(), head.layers[i].get_weights()):
            assert np.array_equal(a, b)
    # the dense head was trained further from the checkpoint's values
    assert not np.array_equal(tuned.layers[-1].get_weights()[0], head.layers[-1].get_weights()[0])


def test_unusable_inputs_fail_with_named_cause(first_trial, dataset_store, store_root: Path,
                                               reporter, tmp_path: Path) -> None:
    missing = _task(dataset_store.uri, str(tmp_path / "out"),
                    model={"backbone": BACKBONE, "weights": str(store_root / "weights" / "nope.keras"),
                           "image_size": 32})
    with pytest.raises(InvalidTask, match="model.weights"):
        run_task(parse_task(missing), open_store, reporter, tmp_path / "cache", tmp_path / "w")
    wrong_size = _task(dataset_store.uri, str(tmp_path / "out"), model={"backbone": BACKBONE, "image_size": 48},
                       start_from={"uri": first_trial[0].artifacts["head_checkpoint"]})
    with pytest.raises(WeightsError, match="32 px"):
        run_task(parse_task(wrong_size), open_store, reporter, tmp_path / "cache", tmp_path / "w")
    # the study pinned another manifest: the dataset was uploaded again under the running study
    changed = _task(dataset_store.uri, str(tmp_path / "out"),
                    dataset={"uri": dataset_store.uri, "manifest_sha256": "0" * 64})
    with pytest.raises(DatasetError, match="changed under the study"):
        run_task(parse_task(changed), open_store, reporter, tmp_path / "cache", tmp_path / "w")
    assert reporter.reports == []
