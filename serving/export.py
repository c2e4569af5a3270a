"""Export of a trained Keras classifier as a TF Serving SavedModel with a model card beside it.

``export_model`` writes ``<base>/<name>/<version>/`` (version = next integer) holding the
SavedModel with the signatures of :mod:`serving.signatures`, plus
``assets.extra/model_card.json`` (TF Serving ignores ``assets.extra``). The version appears
atomically (see :mod:`serving.layout`).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from datastore.store import ObjectStore
from serving.layout import CARD, ModelBase, VersionExists, check_model_name, open_model_base, write_marker
from serving.signatures import (DEFAULT_SIGNATURE, IMAGES_SIGNATURE, INPUT_BYTES, INPUT_IMAGES,
                                OUTPUTS, build_archive, image_hw)

log = logging.getLogger(__name__)

# Concurrent exports of one model race for the next version number; the loser retries this often.
_PUBLISH_ATTEMPTS = 5


@dataclass(frozen=True)
class ExportResult:
    """Where an export went."""

    name: str
    version: int
    uri: str
    card: dict[str, Any]


def export_model(model: keras.Model, base: str | Path | ObjectStore | ModelBase, name: str, *,
                 backbone: str | None, image_size: int | Sequence[int], class_names: Sequence[str],
                 card: Mapping[str, Any] | None = None) -> ExportResult:
    """Exports ``model`` as the next version of ``name`` under ``base``.

    ``backbone`` names the keras.applications model whose ``preprocess_input`` the model expects
    (``None`` for none); ``image_size`` is the model's input size; ``class_names`` label its
    outputs in order. ``card`` holds what the caller knows (study, trial, parameters, metrics,
    dataset hash); the export adds the model's own facts and the export time.
    Raises ValueError for bad arguments before anything is written.
    """
    check_model_name(name)
    hw = image_hw(image_size)
    archive = build_archive(model, backbone=backbone, image_size=hw, class_names=class_names)
    model_base = open_model_base(base)
    staged = model_base.staging_dir(name)
    try:
        archive.write_out(str(staged), verbose=False)
        (staged / CARD).parent.mkdir(parents=True, exist_ok=True)
        for _ in range(_PUBLISH_ATTEMPTS):
            version = model_base.next_version(name)
            full_card = _card(card or {}, name=name, version=version, backbone=backbone, hw=hw,
                              class_names=class_names)
            (staged / CARD).write_text(json.dumps(full_card, indent=2, sort_keys=True, default=str))
            write_marker(staged, {"name": name, "version": version})
            try:
                uri = model_base.publish(name, version, staged)
            except VersionExists as exc:
                log.info("version %d of %s was taken (%s); trying the next", version, name, exc)
                continue
            log.info("exported %s version %d to %s", name, version, uri)
            return ExportResult(name=name, version=version, uri=uri, card=full_card)
        raise RuntimeError(f"could not claim a version of {name} after {_PUBLISH_ATTEMPTS} attempts")
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _card(given: Mapping[str, Any], *, name: str, version: int, backbone: str | None, hw: tuple[int, int],
          class_names: Sequence[str]) -> dict[str, Any]:
    return {
        **given,
        "model_name": name,
        "version": version,
        "backbone": backbone,
        "image_size": list(hw),
        "class_names": list(class_names),
        "signatures": {
            DEFAULT_SIGNATURE: {"inputs": {INPUT_BYTES: "string [N], JPEG or PNG bytes"},
                                "outputs": list(OUTPUTS)},
            IMAGES_SIGNATURE: {"inputs": {INPUT_IMAGES: "float32 [N, H, W, 3], RGB 0-255"},
                               "outputs": list(OUTPUTS)},
        },
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
