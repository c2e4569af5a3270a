"""Export from the clients that are not `saga export`: the Python API's `Study.export` and the dashboard's
export action. The best trial of a study on a real optimizer (localhost gRPC) becomes a TF Serving
version of a model, with its card, and serves as the trained model."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from datastore.local_store import LocalStore
from datastore.manifest import Manifest, save_manifest
from saga.sdk import Study
from serving.layout import CARD, open_model_base
from serving.registry import ModelRegistry
from tests.dashboard.conftest import start_dashboard, stop, wait_for
from tests.dashboard.test_api import get, post
from tests.optimizer.conftest import service, small_spec  # noqa: F401  (fixture)
from tests.serving.helpers import BACKBONE, CLASSES, SIZE, make_images, png, reference


@pytest.fixture
def finished(model, service, tmp_path):
    """A study of two trials with a real checkpoint each; the first (0.9) is the best."""
    target, core = service
    dataset = tmp_path / "dataset"
    save_manifest(LocalStore(dataset), Manifest(classes=list(CLASSES), items=[], seed=0,
                                                split_fractions={"train": 0.7, "validation": 0.3}))
    checkpoint = tmp_path / "trial" / "model.keras"
    checkpoint.parent.mkdir()
    model.save(checkpoint)
    spec = small_spec("joint", dataset={"uri": str(dataset), "test": None},
                      model={"weights": None, "image_size": SIZE},
                      search_space={"backbone": {"type": "categorical", "values": [BACKBONE]}},
                      budget={"trials_per_phase": 2, "parallel_trials": 1})
    study = Study.create(spec, optimizer=target)
    with pytest.raises(LookupError, match="no completed trial"):
        study.export("polyp", to=str(tmp_path / "models"))
    for value in (0.9, 0.7):
        trial, lease = core.lease_trial("w", study.id)
        core.complete_trial(trial.id, lease.id, "SUCCEEDED", {"val_accuracy": value, "test_accuracy": value - 0.1},
                            {"checkpoint": str(checkpoint)}, "")
    return SimpleNamespace(study=study, best=study.best_trial, target=target, base=tmp_path / "models")


def assert_served_as_the_model(base_uri: Path, finished, model, tmp_path) -> None:
    base = open_model_base(str(base_uri))
    assert base.versions("polyp") == [1]
    card = json.loads(base.read_text("polyp", 1, CARD))
    assert (card["study_id"], card["trial_id"]) == (finished.study.id, finished.best.id)
    assert card["validation_metrics"] == {"val_accuracy": 0.9} and card["class_names"] == list(CLASSES)
    registry = ModelRegistry(base, ["polyp"], cache_dir=tmp_path / "cache")
    registry.refresh()
    loaded = registry.get("polyp")
    images, _ = make_images(2, seed=5)
    out = loaded.run(loaded.signature(None), {"image_bytes": np.array([png(i) for i in images], dtype=object)})
    np.testing.assert_allclose(out["probabilities"], reference(model, images), atol=1e-5)


def test_study_export_writes_the_best_trial_as_a_servable_version(finished, model, tmp_path) -> None:
    assert finished.best.value == 0.9
    uri = finished.study.export("polyp", to=str(finished.base))
    assert uri.rstrip("/").endswith("polyp/1")
    assert_served_as_the_model(finished.base, finished, model, tmp_path)


def test_the_dashboards_export_action_exports_the_best_trial(finished, model, tmp_path) -> None:
    url, process = start_dashboard(finished.target, "--enable-actions", "--export-to", str(finished.base))
    try:
        status, job = post(f"{url}api/studies/{finished.study.id}/export", {"model_name": "polyp"})
        assert status == 202 and job["state"] == "running", job
        done = wait_for(lambda: (lambda j: j if j["state"] != "running" else None)(get(f"{url}api/jobs/{job['id']}")[1]),
                        timeout=300, what="the export job")
        assert done["state"] == "succeeded" and done["returncode"] == 0, done["output"]
        assert any("exported polyp version 1" in line for line in done["output"]), done["output"]
    finally:
        assert stop(process) == 0
    assert_served_as_the_model(finished.base, finished, model, tmp_path)
