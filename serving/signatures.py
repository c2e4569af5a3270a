"""The serving signatures of an exported classifier, built around a trained Keras model.

``serving_default`` takes a batch of encoded images (JPEG or PNG bytes) and decodes, resizes and
preprocesses them inside the graph, so any TF Serving client can send camera frames as they are.
``predict_images`` takes float RGB images in 0-255 for clients that already hold pixels.
Both return ``probabilities`` [N, C] float32, ``classes`` [N] string (top-1 label) and
``scores`` [N] float32 (top-1 probability).
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras.export import ExportArchive

from serving.preprocessing import preprocess_fn

DEFAULT_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "predict_images"
INPUT_BYTES = "image_bytes"
INPUT_IMAGES = "images"
OUTPUTS = ("probabilities", "classes", "scores")


def image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``image_size`` (one int or ``(height, width)``) as a checked ``(height, width)`` pair."""
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return hw[0], hw[1]


def resize_images(images: tf.Tensor, hw: tuple[int, int]) -> tf.Tensor:
    """Antialiased bilinear resize of float images [N, h, w, 3] to ``hw`` (as the trainer's input
    pipeline does); images already that size pass unchanged, bit-exact."""
    same = tf.logical_and(tf.equal(tf.shape(images)[1], hw[0]), tf.equal(tf.shape(images)[2], hw[1]))
    resized = tf.cond(same, lambda: images,
                      lambda: tf.image.resize(images, hw, method="bilinear", antialias=True))
    return tf.ensure_shape(resized, [None, hw[0], hw[1], 3])


def decode_images(encoded: tf.Tensor, hw: tuple[int, int]) -> tf.Tensor:
    """Decodes a batch of JPEG/PNG strings [N] into float RGB images [N, H, W, 3] in 0-255."""
    def one(data: tf.Tensor) -> tf.Tensor:
        # expand_animations=False: an animated GIF/PNG gives its first frame, always rank 3.
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = resize_images(tf.cast(image, tf.float32)[tf.newaxis], hw)[0]
        # Round to uint8 levels like trainer_svc/pipeline.py's decode_image, so that served
        # inputs are exactly what the model was trained on.
        return tf.clip_by_value(tf.round(image), 0.0, 255.0)

    return tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([hw[0], hw[1], 3], tf.float32))


def build_archive(model: keras.Model, *, backbone: str | None, image_size: int | Sequence[int],
                  class_names: Sequence[str]) -> ExportArchive:
    """An ExportArchive holding ``model`` with the two serving signatures.

    Raises ValueError when the model's output width differs from the number of class names.
    """
    hw = image_hw(image_size)
    n_out = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if not class_names or any(not isinstance(c, str) or not c for c in class_names):
        raise ValueError(f"class_names must be non-empty strings, got {list(class_names)!r}")
    if n_out is not None and n_out != len(class_names):
        raise ValueError(f"the model has {n_out} outputs but {len(class_names)} class names were given")
    preprocess = preprocess_fn(backbone)
    labels = tf.constant(list(class_names), dtype=tf.string)

    def classify(images: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = tf.cast(model(preprocess(images), training=False), tf.float32)
        top = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities,
                "classes": tf.gather(labels, top),
                "scores": tf.reduce_max(probabilities, axis=-1)}

    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint(DEFAULT_SIGNATURE, lambda image_bytes: classify(decode_images(image_bytes, hw)),
                         input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_BYTES)])
    archive.add_endpoint(IMAGES_SIGNATURE, lambda images: classify(resize_images(images, hw)),
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32,
                                                        name=INPUT_IMAGES)])
    return archive
