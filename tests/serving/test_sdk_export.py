"""The Python API's export (`Study.export`): the best trial of a study on a real optimizer (localhost
gRPC) becomes a TF Serving version of a model, with its card, and serves as the trained model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from datastore.local_store import LocalStore
from datastore.manifest import Manifest, save_manifest
from saga.sdk import Study
from serving.layout import CARD, open_model_base
from serving.registry import ModelRegistry
from tests.optimizer.conftest import service, small_spec  # noqa: F401  (fixture)
from tests.serving.helpers import BACKBONE, CLASSES, SIZE, make_images, png, reference


def test_study_export_writes_the_best_trial_as_a_servable_version(model, service, tmp_path) -> None:
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
    for value in (0.9, 0.7):  # the first trial is the best one
        trial, lease = core.lease_trial("w", study.id)
        core.complete_trial(trial.id, lease.id, "SUCCEEDED", {"val_accuracy": value, "test_accuracy": value - 0.1},
                            {"checkpoint": str(checkpoint)}, "")
    best = study.best_trial
    assert best.value == 0.9

    uri = study.export("polyp", to=str(tmp_path / "models"))
    base = open_model_base(str(tmp_path / "models"))
    assert base.versions("polyp") == [1] and uri.rstrip("/").endswith("polyp/1")
    card = json.loads(base.read_text("polyp", 1, CARD))
    assert (card["study_id"], card["trial_id"]) == (study.id, best.id)
    assert card["validation_metrics"] == {"val_accuracy": 0.9} and card["class_names"] == list(CLASSES)
    registry = ModelRegistry(base, ["polyp"], cache_dir=tmp_path / "cache")
    registry.refresh()
    loaded = registry.get("polyp")
    images, _ = make_images(2, seed=5)
    out = loaded.run(loaded.signature(None), {"image_bytes": np.array([png(i) for i in images], dtype=object)})
    np.testing.assert_allclose(out["probabilities"], reference(model, images), atol=1e-5)
