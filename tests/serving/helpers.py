"""Helpers of the serving tests: a small trained classifier like the trainer's, images, export, server."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from serving.export import ExportResult, export_model  # noqa: E402
from serving.server import ServerConfig, ServingServer, make_server  # noqa: E402

SIZE = 32
CLASSES = ("red", "green", "blue")
BACKBONE = "MobileNetV2"


def make_images(n: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose dominant colour channel is the label: uint8 [n, size, size, 3], labels [n]."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    images = rng.integers(0, 90, (n, size, size, 3))
    for i, label in enumerate(labels):
        images[i, :, :, label] += 150
    return images.astype(np.uint8), labels


def png(image: np.ndarray) -> bytes:
    return tf.io.encode_png(image).numpy()


def jpeg(image: np.ndarray) -> bytes:
    return tf.io.encode_jpeg(image).numpy()


def build_model(seed: int, epochs: int = 0) -> keras.Model:
    """The trainer's architecture (backbone + GlobalMaxPooling2D + Dense softmax); random weights
    unless ``epochs`` (training costs tens of seconds on the shared test machine)."""
    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None,
                                          include_top=False)
    out = keras.layers.Dense(len(CLASSES), activation="softmax")(keras.layers.GlobalMaxPooling2D()(base.output))
    model = keras.Model(base.input, out)
    if epochs:
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        images, labels = make_images(48, seed)
        model.fit(reference_input(images), labels, epochs=epochs, batch_size=16, verbose=0)
    return model


def reference_input(images: np.ndarray) -> np.ndarray:
    """What the trainer feeds the model: the backbone's preprocess_input of float pixels."""
    return keras.applications.mobilenet_v2.preprocess_input(images.astype(np.float32))


def reference(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The Keras model's probabilities for uint8 images at the model's size."""
    return np.asarray(model(reference_input(images), training=False))


def export(model: keras.Model, base: Path | str, name: str = "demo", **card: object) -> ExportResult:
    return export_model(model, base, name, backbone=BACKBONE, image_size=SIZE, class_names=CLASSES,
                        card={"study_id": "st-test", "trial_id": "tr-test", **card})


def start_server(base: Path | str, **options: object) -> ServingServer:
    config = ServerConfig(model_base=base, model_names=("demo",), host="127.0.0.1", grpc_port=0,
                          rest_port=0, metrics_port=0, poll_interval_s=0.2, **options)
    server = make_server(config)
    server.start()
    return server
