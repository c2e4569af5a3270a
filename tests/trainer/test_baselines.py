"""Baselines on the same splits (issue 11): chance and a pixel logistic regression, cached per
dataset, and the comparison `saga study best` and the report show."""
from __future__ import annotations

from pathlib import Path

import pytest

from trainer_svc.baselines import compare, dataset_baselines, metric_key
from trainer_svc.data import SplitFiles

CLASSES = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def files(splits) -> dict[str, SplitFiles]:
    return {role: SplitFiles(items=items, class_names=CLASSES) for role, items in splits.items()}


def test_baselines_score_the_held_out_splits_and_are_cached(files, tmp_path: Path) -> None:
    metrics = dataset_baselines(files, tmp_path)
    # 4 test images per class: the majority class is right on a third; the colour task is easy
    assert metrics[metric_key("majority", "test", "accuracy")] == pytest.approx(1 / 3)
    assert metrics["baseline_pixels_test_accuracy"] >= 0.9
    assert {"baseline_pixels_val_macro_f1", "baseline_majority_val_accuracy"} <= set(metrics)
    assert not any("train" in k for k in metrics)
    cached = list((tmp_path / "baselines").glob("*.json"))
    assert len(cached) == 1
    cached[0].write_text('{"baseline_pixels_test_accuracy": 0.5}')  # served from the cache now
    assert dataset_baselines(files, tmp_path) == {"baseline_pixels_test_accuracy": 0.5}
    fewer = {**files, "test": SplitFiles(files["test"].items[:6], CLASSES)}  # other content, other key
    assert dataset_baselines(fewer, tmp_path) != {"baseline_pixels_test_accuracy": 0.5}


BASE = {"baseline_majority_test_accuracy": 0.1, "baseline_majority_test_macro_f1": 0.02,
        "baseline_pixels_test_accuracy": 0.97, "baseline_pixels_test_macro_f1": 0.97}


@pytest.mark.parametrize("accuracy,warnings", [
    (0.99, []),
    (0.335, ["does not beat logistic regression"]),
    (0.15, ["near chance", "does not beat logistic regression"]),
])
def test_comparison_warns_when_the_best_trial_does_not_beat_the_baselines(accuracy: float, warnings) -> None:
    result = compare({**BASE, "test_accuracy": accuracy, "test_macro_f1": accuracy, "val_accuracy": 1.0})
    assert result.split == "test" and result.trial["accuracy"] == accuracy
    assert len(result.warnings) == len(warnings)
    assert all(w in got for w, got in zip(warnings, result.warnings))
    lines = result.lines()
    assert lines[1].split()[-3:] == ["0.990" if accuracy == 0.99 else f"{accuracy:.3f}", "macro-F1",
                                     f"{accuracy:.3f}"]
    assert sum(line.startswith("WARNING") for line in lines) == len(warnings)


def test_no_test_split_compares_on_validation_and_no_baselines_gives_none() -> None:
    val = {"baseline_majority_val_accuracy": 0.5, "baseline_pixels_val_accuracy": 0.8, "val_accuracy": 0.9}
    assert compare(val).split == "validation"
    assert compare({"val_accuracy": 0.9, "test_accuracy": 0.9}) is None
