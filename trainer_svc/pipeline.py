"""tf.data input pipeline from local image files.

Per element: read -> decode (JPEG/PNG/BMP/GIF first frame) -> resize to the model input ->
cache (uint8, so a Kvasir-sized set fits in a quarter of the float memory) -> shuffle (seeded,
training only) -> batch -> random horizontal/vertical flips (training only, as in the seed) and,
when the recipe asks, random shifts, rotations and zooms (Keras preprocessing layers) ->
the backbone's own ``preprocess_input`` -> prefetch. Decoding runs in parallel (AUTOTUNE).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from trainer_svc.errors import DatasetError

log = logging.getLogger(__name__)

Preprocess = Callable[[tf.Tensor], tf.Tensor]
AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class PipelineConfig:
    """How to turn files into batches."""

    image_size: int
    batch_size: int = 16
    horizontal_flip: bool = True
    vertical_flip: bool = True
    translate: float = 0.0   # largest shift, fraction of the side (trial_contract.recipe.Augmentation)
    rotate: float = 0.0      # largest rotation, degrees
    zoom: float = 0.0        # largest zoom in or out, fraction
    seed: int = 0
    # "" caches decoded images in memory; a path caches them in files there (for sets larger
    # than RAM); None disables caching (benchmarks of the decode path).
    cache: str | None = ""

    @classmethod
    def with_augmentation(cls, augmentation: Any, *, image_size: int, batch_size: int,
                          seed: int) -> "PipelineConfig":
        """The pipeline of a recipe's ``augmentation`` (trial_contract.recipe.Augmentation): the
        one place where its fields become pipeline settings, for trials and pre-training alike."""
        a = augmentation
        return cls(image_size=image_size, batch_size=batch_size, horizontal_flip=a.horizontal_flip,
                   vertical_flip=a.vertical_flip, translate=a.translate, rotate=a.rotate, zoom=a.zoom, seed=seed)


def decode_image(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Reads and decodes one image file to ``[image_size, image_size, 3]`` uint8."""
    raw = tf.io.read_file(path)
    image = tf.io.decode_image(raw, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def make_dataset(items: Sequence[tuple[str, int]], num_classes: int, config: PipelineConfig,
                 preprocess: Preprocess, training: bool) -> tf.data.Dataset:
    """Batches of ``(float32 images [B, S, S, 3], int32 labels [B])`` from ``(path, label)`` pairs.

    Training data is shuffled with ``config.seed`` (reshuffled every epoch) and flipped at
    random; validation and test data keep their order and are never augmented. A file that
    cannot be decoded is logged and skipped instead of failing the trial.
    """
    if not items:
        raise DatasetError("no images in this split")
    paths = [str(p) for p, _ in items]
    labels = [int(label) for _, label in items]
    bad = [label for label in labels if not 0 <= label < num_classes]
    if bad:
        raise DatasetError(f"label {bad[0]} out of range for {num_classes} classes")
    size = config.image_size
    ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))
    ds = ds.map(lambda p, y: (decode_image(p, size), y), num_parallel_calls=AUTOTUNE,
                deterministic=True)
    ds = ds.ignore_errors(log_warning=True)
    if config.cache is not None:
        ds = ds.cache(config.cache)
    if training:
        ds = ds.shuffle(len(paths), seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size, num_parallel_calls=AUTOTUNE)
    augment = _augmenter(config) if training else None

    def finish(images: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images = tf.cast(images, tf.float32)
        if augment is not None:
            images = augment(images)
        return preprocess(images), y

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def _augmenter(config: PipelineConfig) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """Per-image random flips, shifts, rotations and zooms on a batch of float pixels; op seeds
    derive from the pipeline seed so a run with the same global seed sees the same changes.
    Pixels moved in from outside the image mirror its border (Keras's ``reflect``)."""
    jitter = _jitter_layers(config)
    if not (config.horizontal_flip or config.vertical_flip or jitter):
        return None

    def augment(images: tf.Tensor) -> tf.Tensor:
        if config.horizontal_flip:
            images = tf.image.random_flip_left_right(images, seed=config.seed)
        if config.vertical_flip:
            images = tf.image.random_flip_up_down(images, seed=config.seed + 1)
        for layer in jitter:
            images = layer(images, training=True)
        return images

    return augment


def _jitter_layers(config: PipelineConfig) -> list[Any]:
    layers: list[Any] = []
    if config.translate > 0:
        layers.append(keras.layers.RandomTranslation(config.translate, config.translate, seed=config.seed + 2))
    if config.rotate > 0:
        layers.append(keras.layers.RandomRotation(config.rotate / 360.0, seed=config.seed + 3))
    if config.zoom > 0:
        layers.append(keras.layers.RandomZoom(config.zoom, seed=config.seed + 4))
    return layers
