"""The small renderer the manifest tests use renders what real kustomize renders."""
from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import K8S, KUSTOMIZATIONS
from .kustomize import (UnsupportedKustomization, by_key, kustomize_command, render,
                        render_with_kustomize, split_image)

KUSTOMIZE = kustomize_command()


@pytest.mark.skipif(KUSTOMIZE is None, reason="no kustomize v4.5+ (standalone or in kubectl) installed")
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_renderer_matches_real_kustomize(name: str) -> None:
    assert KUSTOMIZE is not None
    ours = by_key(render(K8S / name))
    theirs = by_key(render_with_kustomize(KUSTOMIZE, K8S / name))
    assert sorted(ours) == sorted(theirs)
    for key, obj in ours.items():
        assert obj == theirs[key], f"{key} differs from {' '.join(KUSTOMIZE)}"


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(UnsupportedKustomization, match="configMapGenerator"):
        render(tmp_path)


def test_patch_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "p.yaml").write_text("- {op: add, path: /data, value: {}}\n")
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\npatches:\n- path: p.yaml\n  target: {kind: ConfigMap, name: b}\n")
    with pytest.raises(UnsupportedKustomization, match="matches no object"):
        render(tmp_path)


@pytest.mark.parametrize("reference, parts", [
    ("tensorflow/serving:2.21.0", ("tensorflow/serving", "2.21.0", None)),
    ("registry.example.org:5000/saga/x:0.1", ("registry.example.org:5000/saga/x", "0.1", None)),
    ("busybox", ("busybox", None, None)),
    ("a/b@sha256:" + "0" * 64, ("a/b", None, "sha256:" + "0" * 64)),
])
def test_split_image(reference: str, parts: tuple) -> None:
    assert split_image(reference) == parts
