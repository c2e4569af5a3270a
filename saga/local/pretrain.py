"""Transfer learning without a model hub: pre-train a backbone on a *source* synthetic task and
store its weights file, which studies then name in ``model.weights`` (what an air-gapped hospital
cluster does with a file it uploaded once)."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class PretrainResult:
    uri: str            # where the weights file is in the store
    train_accuracy: float
    images: int
    classes: int


def load_folder(src: Path, image_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of a folder-per-class tree as float pixels in [0, 255], integer labels, class names."""
    import keras

    classes = sorted(p.name for p in src.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ValueError(f"{src}: need at least 2 class folders, found {classes}")
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((src / name).rglob("*.jpg")):
            images.append(np.asarray(keras.utils.load_img(path, target_size=(image_size, image_size))))
            labels.append(label)
    return np.stack(images).astype("float32"), np.asarray(labels), classes


def recalibrate_batch_norm(model: "keras.Model", x: np.ndarray, batch: int = 256) -> None:
    """Sets every BatchNormalization layer's moving mean and variance to the statistics of ``x``.

    A short pre-training leaves the moving averages near their initial values (MobileNetV2 uses
    momentum 0.999), and transfer learning runs the frozen backbone in inference mode, on those
    averages: its features would be nearly constant. One pass in training mode with momentum 0
    replaces them by the data's own statistics; the learnt weights do not change.
    """
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        model(x[:batch], training=True)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum


def pretrain_weights(src: Path, store_uri: str, key: str, *, backbone: str, image_size: int,
                     epochs: int = 2, seed: int = 0) -> PretrainResult:
    """Trains ``backbone`` (all layers, from random initialisation) on the images under ``src``
    for ``epochs`` and puts the model file at ``key`` in the store at ``store_uri``."""
    import keras

    from datastore import open_store
    from trainer_svc.backbones import get_backbone
    from trainer_svc.models import build_model

    keras.utils.set_random_seed(seed)
    x, y, classes = load_folder(src, image_size)
    x = get_backbone(backbone).preprocess_input(x)  # the same preprocessing the trainer applies
    model = build_model(backbone, len(classes), image_size)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=epochs, batch_size=16, shuffle=True, verbose=0)
    recalibrate_batch_norm(model, x)
    with tempfile.TemporaryDirectory(prefix="saga-pretrain-") as tmp:
        local = Path(tmp) / Path(key).name
        model.save(local)
        uri = open_store(store_uri).put_file(key, local)
    return PretrainResult(uri=uri, train_accuracy=float(history.history["accuracy"][-1]),
                          images=len(x), classes=len(classes))
