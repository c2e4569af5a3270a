"""What the report reads from outside: the trainer's metrics.json, and dataset names."""
from __future__ import annotations

import json

import pytest

from report.baselines import dataset_family
from report.model import Trial
from report.source import read_evaluation


def trial(**artifacts) -> Trial:
    return Trial(id="st-1-0000", phase=0, number=0, state="SUCCEEDED", parameters={}, task={}, attempt=1,
                 value=0.5, stop_reason="", error="", metrics={}, artifacts=artifacts, worker_id="w",
                 created=1.0, started=2.0, ended=3.0)


def test_a_missing_unreadable_or_foreign_metrics_file_is_named_not_raised(tmp_path):
    assert read_evaluation(trial()) == (None, "trial st-1-0000 has no 'metrics' artifact")
    doc, why = read_evaluation(trial(metrics=str(tmp_path / "gone" / "metrics.json")))
    assert doc is None and why.startswith(f"cannot read {tmp_path / 'gone' / 'metrics.json'}")
    (tmp_path / "metrics.json").write_text("{not json")
    doc, why = read_evaluation(trial(metrics=str(tmp_path / "metrics.json")))
    assert doc is None and "cannot read" in why
    (tmp_path / "metrics.json").write_text(json.dumps({"summary": {}}))
    assert read_evaluation(trial(metrics=str(tmp_path / "metrics.json")))[1].endswith("has no 'evaluation' section")
    doc, why = read_evaluation(trial(metrics="nosuchscheme://bucket/metrics.json"))
    assert doc is None and "cannot read" in why


def test_a_stored_evaluation_is_read_as_the_trainer_wrote_it(tmp_path):
    stored = {"evaluation": {"test": {"classes": ["a", "b"], "accuracy": 0.5}}, "summary": {"gpus": 0.0}}
    (tmp_path / "metrics.json").write_text(json.dumps(stored))
    assert read_evaluation(trial(metrics=str(tmp_path / "metrics.json"))) == (stored, "")


@pytest.mark.parametrize("name, family", [
    ("s3://saga/datasets/kvasir-v2", "kvasir"), ("/data/Kvasir_Dataset", "kvasir"),
    ("s3://saga/datasets/nerthus", "nerthus"), ("NERTHUS", "nerthus"),
    ("s3://saga/datasets/synth", None), ("", None)])
def test_the_dataset_papers_baselines_follow_the_dataset_name(name, family):
    assert dataset_family(name) == family
