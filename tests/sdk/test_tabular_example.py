"""examples/tabular_mlp.py as a user runs it: a Keras MLP on scikit-learn's breast-cancer data, tuned
through ask/tell against a real optimizer, with its report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.optimizer.conftest import service  # noqa: F401  (fixture)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tabular_mlp.py"


@pytest.mark.slow
def test_the_tabular_example_tunes_a_keras_mlp_and_writes_its_report(service, tmp_path):
    target, core = service
    done = subprocess.run([sys.executable, str(EXAMPLE), "--optimizer", target, "--trials", "2", "--epochs", "2",
                           "--store", str(tmp_path / "store"), "--report", str(tmp_path / "report")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    [study] = core.list_studies()
    assert study.state == "COMPLETED"
    trials = core.list_trials(study.id)
    assert len(trials) == 2 and all(t.state in ("SUCCEEDED", "STOPPED_EARLY") for t in trials)
    best = core.best_trial(study.id)
    assert f"best val_accuracy {best.value:.4f}" in done.stdout
    assert 0.5 < best.value <= 1.0 and 0.0 <= best.metrics["test_accuracy"] <= 1.0
    stored = json.loads(Path(best.artifacts["metrics"]).read_text())["evaluation"]
    assert stored["test"]["classes"] == ["malignant", "benign"] and stored["test"]["samples"] == 114
    assert stored["validation"]["samples"] == 114
    page = (tmp_path / "report" / "index.html").read_text()
    assert "breast-cancer MLP" in page and "malignant" in page
