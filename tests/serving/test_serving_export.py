"""Export: TF Serving layout, atomic versions, the model card, predictions equal to the Keras model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from serving.export import export_model
from serving.layout import CARD, MARKER, open_model_base
from tests.serving.helpers import BACKBONE, CLASSES, SIZE, export, jpeg, make_images, png, reference


def test_export_writes_tf_serving_layout_with_card(exported, model) -> None:
    version_dir = Path(exported.uri)
    assert exported.version == 1 and version_dir.name == "1" and version_dir.parent.name == "demo"
    assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
    assert (version_dir / MARKER).is_file()
    card = json.loads((version_dir / CARD).read_text())
    assert card["class_names"] == list(CLASSES) and card["backbone"] == BACKBONE
    assert card["study_id"] == "st-test" and card["version"] == 1 and card["exported_at"]
    # No temporary directory is left beside the version.
    assert [p.name for p in version_dir.parent.iterdir()] == ["1"]


def test_saved_model_signatures_equal_keras_model(exported, model) -> None:
    images, _ = make_images(6, seed=7)
    expected = reference(model, images)
    loaded = tf.saved_model.load(exported.uri)
    by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant([png(i) for i in images]))
    by_pixels = loaded.signatures["predict_images"](images=tf.constant(images, tf.float32))
    np.testing.assert_allclose(by_bytes["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(by_pixels["probabilities"].numpy(), expected, atol=1e-5)
    labels = [CLASSES[i] for i in expected.argmax(1)]
    assert [c.decode() for c in by_bytes["classes"].numpy()] == labels
    np.testing.assert_allclose(by_bytes["scores"].numpy(), expected.max(1), atol=1e-5)


def test_jpeg_and_other_sizes_are_decoded_and_resized(exported) -> None:
    images, labels = make_images(3, seed=3, size=80)
    loaded = tf.saved_model.load(exported.uri)
    out = loaded.signatures["serving_default"](image_bytes=tf.constant([jpeg(i) for i in images]))
    assert out["probabilities"].shape == (3, len(CLASSES))
    np.testing.assert_allclose(out["probabilities"].numpy().sum(1), 1.0, atol=1e-5)


def test_next_export_is_the_next_version(model, tmp_path) -> None:
    first, second = export(model, tmp_path), export(model, tmp_path)
    assert (first.version, second.version) == (1, 2)
    assert open_model_base(tmp_path).versions("demo") == [1, 2]


def test_incomplete_version_is_not_listed_but_keeps_its_number(tmp_path) -> None:
    (tmp_path / "demo" / "3" / "variables").mkdir(parents=True)  # an export that died halfway
    base = open_model_base(tmp_path)
    assert base.versions("demo") == [] and base.next_version("demo") == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"class_names": ["a", "b"]}, "3 outputs but 2 class names"),
    ({"backbone": "NoSuchNet"}, "not a keras.applications model"),
    ({"image_size": 0}, "image_size"),
    ({"name": "../evil"}, "model name"),
])
def test_bad_arguments_are_refused_before_writing(model, tmp_path, kwargs, message) -> None:
    args = {"name": "demo", "backbone": BACKBONE, "image_size": SIZE, "class_names": CLASSES, **kwargs}
    name = args.pop("name")
    with pytest.raises(ValueError, match=message):
        export_model(model, tmp_path, name, **args)
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "demo"]) and not any(tmp_path.rglob("*.pb"))
