"""Export of an optimizer trial: fetch its checkpoint and dataset manifest, build the model card.

Takes the trial as plain data (:class:`TrialInfo`), so it imports no optimizer or gRPC code.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from datastore import open_store
from serving.export import ExportResult, export_model


@dataclass(frozen=True)
class TrialInfo:
    """What the export needs of a trial record."""

    study_id: str
    trial_id: str
    parameters: dict[str, Any]
    metrics: dict[str, float]
    artifacts: dict[str, str]
    task: dict[str, Any] = field(default_factory=dict)


def export_trial(trial: TrialInfo, base: str, name: str) -> ExportResult:
    """Exports the trial's best checkpoint as the next version of ``name`` under ``base``.

    Raises ValueError naming what the trial lacks (checkpoint, backbone, image size, classes).
    """
    checkpoint = trial.artifacts.get("checkpoint")
    if not checkpoint:
        raise ValueError(f"trial {trial.trial_id} has no 'checkpoint' artifact "
                         f"(artifacts: {sorted(trial.artifacts)})")
    model_cfg = trial.task.get("model") or {}
    backbone, image_size = model_cfg.get("backbone"), model_cfg.get("image_size")
    if not backbone or not isinstance(image_size, int):
        raise ValueError(f"trial {trial.trial_id}: task_json lacks model.backbone or model.image_size")
    dataset_uri = (trial.task.get("dataset") or {}).get("uri")
    if not dataset_uri:
        raise ValueError(f"trial {trial.trial_id}: task_json lacks dataset.uri")
    manifest_bytes = _fetch(posixpath.join(dataset_uri, "manifest.json"))
    classes = json.loads(manifest_bytes).get("classes")
    if not isinstance(classes, list) or not classes:
        raise ValueError(f"{dataset_uri}/manifest.json has no 'classes' list")
    with tempfile.TemporaryDirectory(prefix="saga-export-") as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(_fetch(checkpoint))
        model = keras.saving.load_model(path, compile=False)
    card = {
        "study_id": trial.study_id,
        "trial_id": trial.trial_id,
        "parameters": trial.parameters,
        "validation_metrics": _metrics(trial.metrics, "val_"),
        "test_metrics": _metrics(trial.metrics, "test_"),
        "checkpoint": checkpoint,
        "dataset": {"uri": dataset_uri, "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()},
    }
    return export_model(model, base, name, backbone=backbone, image_size=image_size,
                        class_names=[str(c) for c in classes], card=card)


def _metrics(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {k: v for k, v in sorted(metrics.items()) if k.startswith(prefix)}


def _fetch(uri: str) -> bytes:
    """One object by its full URI (``s3://bucket/key`` or a local path)."""
    parent, key = posixpath.split(uri.rstrip("/"))
    return open_store(parent).get_bytes(key)
