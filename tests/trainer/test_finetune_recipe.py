"""The training recipe that keeps trials learning (issue 11): fine-tuning a pre-trained backbone
keeps its BatchNorm statistics and does not collapse validation accuracy; a backbone without
weights trains every layer; BatchNorm recalibration makes the moving statistics describe the data.

A six-layer conv/BatchNorm backbone in Saga's flat layout keeps these tests to seconds; the real
backbones' freezing is checked in test_models.py.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer_svc.batchnorm import recalibrate_batch_norm
from trainer_svc.models import (FROM_SCRATCH_MOMENTUM, HEAD_LAYER, POOL_LAYER, batch_norm_layers,
                                build_model, compile_for_step, set_trainable)
from trainer_svc.pipeline import PipelineConfig, make_dataset
from trainer_svc.task import DelimitingLayer, Objective, StepSpec
from trainer_svc.training import train

OBJECTIVE = Objective("val_accuracy", "maximize")


def _preprocess(x: tf.Tensor) -> tf.Tensor:
    return x / 127.5 - 1.0


def _tiny_model(num_classes: int) -> keras.Model:
    """Conv/BatchNorm backbone + the Saga head (the layout set_trainable and checkpoints expect)."""
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for i, (filters, stride) in enumerate([(8, 1), (16, 2), (16, 2)]):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.99, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalMaxPooling2D(name=POOL_LAYER)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax", name=HEAD_LAYER)(x))


def _dataset(items, training: bool) -> tf.data.Dataset:
    config = PipelineConfig(image_size=32, batch_size=8, seed=3)
    return make_dataset(items, 3, config, _preprocess, training=training)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> keras.Model:
    """The tiny backbone pre-trained from scratch on a *source* task whose images are the
    negatives of the target's (other statistics in every layer), then recalibrated, as
    ``saga weights pretrain`` does."""
    root = tmp_path_factory.mktemp("source")
    rng = np.random.default_rng(11)
    items = []
    for label in range(3):  # the target's kind of image (conftest.write_image), colours inverted
        for i in range(16):
            pixels = rng.integers(0, 90, size=(40, 48, 3), dtype=np.uint8)
            pixels[..., 2 - label] = rng.integers(150, 255, size=(40, 48), dtype=np.uint8)
            path = root / f"{label}_{i}.png"
            keras.utils.save_img(path, 255 - pixels, scale=False)
            items.append((str(path), label))
    keras.utils.set_random_seed(5)
    model = _tiny_model(3)
    set_trainable(model, "head", pretrained=False)
    compile_for_step(model, "Adam", 0.01)
    data = _dataset(items, training=True)
    model.fit(data, epochs=4, verbose=0)
    recalibrate_batch_norm(model, data)
    return model


def _statistics(model: keras.Model) -> list[np.ndarray]:
    return [np.array(v) for layer in batch_norm_layers(model)
            for v in (layer.moving_mean, layer.moving_variance)]


def test_finetuning_a_pretrained_backbone_keeps_statistics_and_accuracy(
        pretrained: keras.Model, splits, reporter, tmp_path: Path) -> None:
    keras.utils.set_random_seed(2)
    model = _tiny_model(3)  # a new head on the pre-trained backbone, as build_model makes it
    for layer in model.layers[:model.layers.index(model.get_layer(POOL_LAYER))]:
        if layer.weights:
            layer.set_weights(pretrained.get_layer(layer.name).get_weights())
    before = _statistics(model)
    keras.utils.set_random_seed(0)
    steps = [StepSpec("head", "Adam", 0.01, 3), StepSpec("finetune", "Adam", 0.01, 3, DelimitingLayer(index=0))]
    result = train(model, steps, _dataset(splits["train"], True), _dataset(splits["validation"], False),
                   reporter, tmp_path, OBJECTIVE, heartbeat_every_s=60.0)
    assert all(np.array_equal(a, b) for a, b in zip(before, _statistics(model))), \
        "fine-tuning moved the pre-trained BatchNorm statistics"
    head = max(e["val_accuracy"] for e in result.histories["head"])
    finetune = [e["val_accuracy"] for e in result.histories["finetune"]]
    assert head >= 0.6, result.histories  # chance is 0.33
    # a collapse (BatchNorm in training mode on stale statistics) drops these towards chance
    assert min(finetune) >= head - 0.15 and finetune[-1] >= 0.9, result.histories


def test_pretrained_backbone_freezes_every_batch_norm_layer() -> None:
    model = build_model("MobileNetV2", 3, 32, alpha=0.35)
    n = set_trainable(model, "finetune", DelimitingLayer(index=0))
    assert n == 0
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
    assert all(layer.trainable for layer in model.layers
               if layer.weights and not isinstance(layer, keras.layers.BatchNormalization))


def test_without_weights_every_layer_trains_in_every_step() -> None:
    model = build_model("MobileNetV2", 3, 32, None, alpha=0.35)
    assert {layer.momentum for layer in batch_norm_layers(model)} == {FROM_SCRATCH_MOMENTUM}
    for step in ("head", "finetune"):
        assert set_trainable(model, step, DelimitingLayer(relative=0.5), pretrained=False) == 0
        assert all(layer.trainable for layer in model.layers)
        assert len(model.trainable_weights) == sum(len(layer.trainable_weights) for layer in model.layers)


def test_recalibration_sets_the_data_statistics_and_keeps_weights() -> None:
    keras.utils.set_random_seed(1)
    model = _tiny_model(3)
    weights = [np.array(w) for w in model.trainable_weights]
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(64, 32, 32, 3)).astype("float32")
    used = recalibrate_batch_norm(model, [x[i:i + 16] for i in range(0, 64, 16)])
    assert used == 4
    first = model.get_layer("bn0")
    conv = model.get_layer("conv0")(x)
    assert np.allclose(first.moving_mean, conv.numpy().mean(axis=(0, 1, 2)), atol=1e-4)
    assert first.momentum == 0.99 and not any(layer.trainable is False for layer in batch_norm_layers(model))
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(weights, model.trainable_weights))


def test_pretraining_takes_the_trial_recipes_schedule_and_augmentation(splits) -> None:
    from trainer_svc.pretrain import PretrainConfig, pretrain_model
    from trial_contract.recipe import Augmentation

    config = PretrainConfig(backbone="VGG16", epochs=2, batch_size=8, learning_rate=0.002, lr_schedule="cosine",
                            augmentation=Augmentation(vertical_flip=False, translate=0.1, rotate=10.0),
                            validation_split=None)
    lines: list[str] = []
    model, _, val = pretrain_model(splits["train"], None, ["blue", "green", "red"], config, say=lines.append)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)  # the second of 2 cosine epochs
    assert val is None and [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine"):
        PretrainConfig(backbone="VGG16", lr_schedule="linear")
