"""Synthetic endoscopy data: deterministic, in the layouts upload expects, and learnable."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression

from datastore.scan import Candidate, CheckedImage, check_image
from datastore.synth import VIDEO_GROUP_REGEX, synthesize


def _digest_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    args = dict(classes=4, per_class=6, size=48, seed=3, corrupt=2)
    synthesize(tmp_path / "a", **args)
    synthesize(tmp_path / "b", **args)
    synthesize(tmp_path / "c", **{**args, "seed": 4})
    a, b, c = (_digest_tree(tmp_path / name) for name in "abc")
    assert a == b and len(a) == 4 * 6 + 2
    assert a.keys() == c.keys() and a != c


def test_kvasir_layout_with_jpeg_frames(tmp_path: Path) -> None:
    result = synthesize(tmp_path, classes=3, per_class=5, size=40, seed=0)
    assert result.classes == ["polyp", "ulcer", "vessels"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in result.images)[:2] == \
        ["polyp/polyp_0000.jpg", "polyp/polyp_0001.jpg"]
    with Image.open(result.images[0]) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (40, 40), "RGB")
        red, green, blue = np.asarray(image, np.float32).reshape(-1, 3).mean(axis=0)
    assert red > green and red > blue  # reddish tissue


def test_video_layout_groups_frames(tmp_path: Path) -> None:
    result = synthesize(tmp_path, classes=2, per_class=10, size=32, seed=0, videos=3)
    rels = [p.relative_to(tmp_path).as_posix() for p in result.images]
    assert len(rels) == 20
    groups = {re.match(VIDEO_GROUP_REGEX, rel).group(1) for rel in rels}
    assert groups == {f"{c}/video_{v:02d}" for c in ("polyp", "ulcer") for v in range(3)}


def test_corrupt_files_do_not_decode(tmp_path: Path) -> None:
    result = synthesize(tmp_path, classes=2, per_class=2, size=32, corrupt=3)
    assert len(result.corrupt) == 3
    for path in result.corrupt:
        checked = check_image(Candidate(path, path.relative_to(tmp_path).as_posix(), "x"))
        assert not isinstance(checked, CheckedImage), path


@pytest.mark.parametrize("kwargs", [{"classes": 1}, {"classes": 9}, {"size": 8},
                                    {"per_class": 0}, {"seed": -1}, {"videos": 50}])
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        synthesize(tmp_path, **{"per_class": 4, **kwargs})


def test_classes_are_separable_by_a_simple_model(tmp_path: Path) -> None:
    """A proxy for "a small CNN learns it in 1-2 epochs", without paying for TensorFlow here:
    a linear model on 8x8 thumbnails must beat chance (1/3) by far on held-out images."""
    result = synthesize(tmp_path, classes=3, per_class=40, size=32, seed=0)
    features, labels = [], []
    for path in result.images:
        with Image.open(path) as image:
            features.append(np.asarray(image.resize((8, 8)), np.float32).ravel() / 255)
        labels.append(result.classes.index(path.parent.name))
    x, y = np.stack(features), np.array(labels)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    model = LogisticRegression(max_iter=2000).fit(x[:84], y[:84])
    assert model.score(x[84:], y[84:]) >= 0.8
