"""What a study may ask of trainers that cannot reach the internet (an air-gapped cluster).

On the cluster of k8s/, the trainers' NetworkPolicy allows the optimizer, MinIO and DNS only, so
Keras cannot download ImageNet weights there. The optimizer is told so (``saga optimizer
--offline``; ``SAGA_OFFLINE=true`` in the cluster's ConfigMap) and refuses such a study when it is
created; a trainer whose download fails anyway says the same (trainer_svc.models).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InvalidArgument

if TYPE_CHECKING:  # the trainer imports this module for its message only
    from .spec import StudySpec

# What to do instead, in every message about ImageNet weights that cannot be downloaded.
IMAGENET_INSTEAD = (
    "put a weights file for the backbone in the object store once and set model.weights to its URI: "
    "make it where the internet is reachable and upload it with `saga weights upload FILE "
    "s3://saga/weights/NAME.keras`, or pre-train one on your own images with `saga weights pretrain "
    "DATASET_URI --backbone NAME --out s3://saga/weights/NAME.keras` (docs/DEPLOY.md, \"Weights\")")


def check_offline(spec: StudySpec) -> None:
    """INVALID_ARGUMENT for a study that needs a download no trainer can make."""
    if spec.model.get("weights") == "imagenet":
        raise InvalidArgument("model.weights: 'imagenet' weights are downloaded by each trainer from the internet, "
                              "which this cluster's trainers cannot reach (the optimizer runs with "
                              f"SAGA_OFFLINE=true); {IMAGENET_INSTEAD}")
