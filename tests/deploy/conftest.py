"""Fixtures of the deployment tests: paths, the rendered manifests, a real S3 server (moto)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"



# The kustomizations a user applies (overlays) and the base they share.
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/gpu", "overlays/keda", "overlays/kueue")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """kustomization name -> its rendered objects (the small renderer; checked against kustomize)."""
    from .kustomize import render

    return {name: render(K8S / name) for name in KUSTOMIZATIONS}
