"""Model builder: registry, the seed's head, freezing at the delimiting layer, weight loading."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from trainer_svc.backbones import BACKBONES, get_backbone
from trainer_svc.errors import InvalidTask, WeightsError
from trainer_svc.models import (HEAD_LAYER, OPTIMIZERS, POOL_LAYER, base_layer_count, build_model,
                                compile_for_step, copy_weights_by_name, load_base_weights, set_trainable)
from trainer_svc.task import OPTIMIZERS as TASK_OPTIMIZERS
from trainer_svc.task import DelimitingLayer

SEED_NINE = ["Xception", "VGG16", "VGG19", "ResNet50", "InceptionV3", "InceptionResNetV2",
             "DenseNet121", "DenseNet169", "DenseNet201"]


@pytest.fixture(scope="module")
def small() -> keras.Model:
    return build_model("MobileNetV2", 3, 32, alpha=0.35)


def test_registry_covers_seed_and_newer_families() -> None:
    for name in SEED_NINE + ["EfficientNetB0", "EfficientNetB7", "EfficientNetV2S", "MobileNetV2",
                             "MobileNetV3Small", "MobileNetV3Large", "ConvNeXtTiny"]:
        assert name in BACKBONES
    for entry in BACKBONES.values():  # every entry resolves in this Keras
        assert callable(entry.constructor) and callable(entry.preprocess_input)
    assert get_backbone("InceptionV3").default_size == 299
    with pytest.raises(KeyError, match="unknown backbone 'ResNet51'"):
        get_backbone("ResNet51")


@pytest.mark.parametrize("name,size", [("MobileNetV2", 32), ("EfficientNetB0", 32),
                                       ("MobileNetV3Small", 32), ("ResNet50", 32), ("Xception", 71)])
def test_small_backbones_build_with_seed_head(name: str, size: int) -> None:
    model = build_model(name, 4, size)
    assert model.input_shape == (None, size, size, 3) and model.output_shape == (None, 4)
    assert isinstance(model.get_layer(POOL_LAYER), keras.layers.GlobalMaxPooling2D)
    assert model.layers[-1].name == HEAD_LAYER and model.layers[-1].activation.__name__ == "softmax"
    reference = get_backbone(name).constructor(include_top=False, weights=None,
                                               input_shape=(size, size, 3))
    assert base_layer_count(model) == len(reference.layers)
    probs = model.predict_on_batch(np.zeros((2, size, size, 3), np.float32))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_too_small_input_and_bad_options_are_refused() -> None:
    with pytest.raises(InvalidTask, match="at least 75 px"):
        build_model("InceptionV3", 3, 64)
    with pytest.raises(InvalidTask, match="cannot build MobileNetV2"):
        build_model("MobileNetV2", 3, 32, depth=4)
    with pytest.raises(InvalidTask, match="at least 2 classes"):
        build_model("MobileNetV2", 1, 32)


def _trainable_flags(model: keras.Model) -> list[bool]:
    return [layer.trainable for layer in model.layers]


def test_head_step_freezes_whole_base(small: keras.Model) -> None:
    n = base_layer_count(small)
    assert set_trainable(small, "head") == n
    assert _trainable_flags(small) == [False] * n + [True, True]
    head_vars = {id(v) for layer in small.layers[n:] for v in layer.trainable_weights}
    assert {id(v) for v in small.trainable_weights} == head_vars


@pytest.mark.parametrize("delimiter", [DelimitingLayer(index=100), DelimitingLayer(index=0),
                                       DelimitingLayer(relative=0.6667), DelimitingLayer(relative=1.0)])
def test_finetune_unfreezes_exactly_from_delimiting_layer(small: keras.Model,
                                                          delimiter: DelimitingLayer) -> None:
    n = base_layer_count(small)
    expected = delimiter.index if delimiter.index is not None else int(np.floor(delimiter.relative * n))
    assert set_trainable(small, "finetune", delimiter) == expected
    # BatchNorm layers stay frozen (inference mode) in a pre-trained backbone
    unfrozen = [not isinstance(layer, keras.layers.BatchNormalization) for layer in small.layers[expected:n]]
    assert _trainable_flags(small) == [False] * expected + unfrozen + [True, True]


def test_every_task_optimizer_compiles(small: keras.Model) -> None:
    assert set(OPTIMIZERS) == set(TASK_OPTIMIZERS)
    for name in OPTIMIZERS:
        compile_for_step(small, name, 0.01)
        assert type(small.optimizer).__name__ == name
        assert float(small.optimizer.learning_rate) == pytest.approx(0.01)
    with pytest.raises(InvalidTask, match="unknown optimizer"):
        compile_for_step(small, "LBFGS", 0.01)


def _randomize(model: keras.Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])


def _base_weights(model: keras.Model) -> list[np.ndarray]:
    return [w for layer in model.layers[:base_layer_count(model)] for w in layer.get_weights()]


def test_weights_file_of_base_loads_exactly(tmp_path: Path) -> None:
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                          alpha=0.35)
    _randomize(base, 1)
    base.save_weights(tmp_path / "base.weights.h5")
    model = build_model("MobileNetV2", 3, 32, tmp_path / "base.weights.h5", alpha=0.35)
    loaded = _base_weights(model)
    assert len(loaded) == len(base.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(loaded, base.get_weights()))


def test_keras_model_file_loads_by_layer_name(tmp_path: Path) -> None:
    source = build_model("MobileNetV2", 5, 32, alpha=0.35)  # other head: only the base transfers
    _randomize(source, 2)
    source.save(tmp_path / "pretrained.keras")
    model = build_model("MobileNetV2", 3, 32, tmp_path / "pretrained.keras", alpha=0.35)
    assert all(np.array_equal(a, b) for a, b in zip(_base_weights(model), _base_weights(source)))


def test_mismatched_weights_are_refused(tmp_path: Path) -> None:
    other = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                           alpha=0.5)
    other.save_weights(tmp_path / "other.weights.h5")
    other.save(tmp_path / "other.keras")
    target = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                            alpha=0.35)
    with pytest.raises(WeightsError, match="does not fit"):
        load_base_weights(target, tmp_path / "other.weights.h5")
    with pytest.raises(WeightsError, match="shapes"):
        load_base_weights(target, tmp_path / "other.keras")
    unrelated = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense_x")])
    with pytest.raises(WeightsError, match="have no weights in the file"):
        copy_weights_by_name(unrelated, target)
    with pytest.raises(WeightsError, match="does not exist"):
        load_base_weights(target, tmp_path / "missing.weights.h5")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(WeightsError, match="must end in"):
        load_base_weights(target, tmp_path / "w.bin")
