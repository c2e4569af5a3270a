"""The tf.data pipeline: decoded, resized, preprocessed batches; flips on training data only."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from trainer_svc.errors import DatasetError
from trainer_svc.pipeline import PipelineConfig, make_dataset


def _identity(x: tf.Tensor) -> tf.Tensor:
    return x


def test_batches_have_model_shape_dtype_and_labels(splits: dict[str, list[tuple[str, int]]]) -> None:
    items = splits["validation"]  # png, jpg and bmp files of 40x48 px
    config = PipelineConfig(image_size=32, batch_size=5)
    batches = list(make_dataset(items, 3, config, lambda x: x / 127.5 - 1.0, training=False))
    assert [int(b[0].shape[0]) for b in batches] == [5, 5, 2]
    images, labels = batches[0]
    assert images.shape[1:] == (32, 32, 3) and images.dtype == tf.float32
    assert labels.dtype == tf.int32
    # preprocess_input was applied: [0, 255] -> [-1, 1]
    all_images = np.concatenate([b[0].numpy() for b in batches])
    assert all_images.min() >= -1.0 and all_images.max() <= 1.0 and all_images.min() < -0.5
    # evaluation order is the input order
    assert np.concatenate([b[1].numpy() for b in batches]).tolist() == [y for _, y in items]


def _half_white(path: Path) -> None:
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:16, :16] = 255  # top-left quadrant: any flip moves it
    Image.fromarray(pixels).save(path)


def _flip_kinds(ds: tf.data.Dataset, epochs: int) -> set[str]:
    kinds = set()
    for _ in range(epochs):
        for images, _ in ds:
            for image in images.numpy():
                corner = {(r, c) for r in (0, 31) for c in (0, 31) if image[r, c, 0] > 128}
                kinds.add({(0, 0): "none", (0, 31): "horizontal", (31, 0): "vertical",
                           (31, 31): "both"}[corner.pop()])
    return kinds


def test_flips_on_training_data_only(tmp_path: Path) -> None:
    items = []
    for i in range(8):
        _half_white(tmp_path / f"{i}.png")
        items.append((str(tmp_path / f"{i}.png"), 0))
    config = PipelineConfig(image_size=32, batch_size=4, seed=3)
    train = make_dataset(items, 2, config, _identity, training=True)
    evaluation = make_dataset(items, 2, config, _identity, training=False)
    assert _flip_kinds(train, epochs=3) == {"none", "horizontal", "vertical", "both"}
    assert _flip_kinds(evaluation, epochs=3) == {"none"}
    only_h = PipelineConfig(image_size=32, batch_size=4, seed=3, vertical_flip=False)
    assert _flip_kinds(make_dataset(items, 2, only_h, _identity, training=True), 3) == {"none", "horizontal"}


def test_training_order_is_shuffled_reproducibly(splits: dict[str, list[tuple[str, int]]]) -> None:
    config = PipelineConfig(image_size=32, batch_size=64, seed=5, horizontal_flip=False,
                            vertical_flip=False)
    items = splits["train"]

    def order() -> list[float]:
        tf.random.set_seed(1)
        ds = make_dataset(items, 3, config, _identity, training=True)
        return [float(x) for x in next(iter(ds))[0].numpy().mean(axis=(1, 2, 3))]

    evaluation = make_dataset(items, 3, config, _identity, training=False)
    in_order = [float(x) for x in next(iter(evaluation))[0].numpy().mean(axis=(1, 2, 3))]
    first = order()
    assert first == order()
    assert first != in_order and sorted(first) == pytest.approx(sorted(in_order))


def test_undecodable_file_is_skipped_not_fatal(tmp_path: Path, splits: dict[str, list[tuple[str, int]]]) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    items = splits["validation"][:3] + [(str(bad), 1)]
    ds = make_dataset(items, 3, PipelineConfig(image_size=32, batch_size=8), _identity, training=False)
    labels = np.concatenate([y.numpy() for _, y in ds]).tolist()
    assert labels == [y for _, y in splits["validation"][:3]]


def test_bad_inputs_are_refused(splits: dict[str, list[tuple[str, int]]]) -> None:
    config = PipelineConfig(image_size=32)
    with pytest.raises(DatasetError, match="no images"):
        make_dataset([], 3, config, _identity, training=True)
    with pytest.raises(DatasetError, match="label 3 out of range"):
        make_dataset([(splits["train"][0][0], 3)], 3, config, _identity, training=True)


def _square(path: Path) -> None:
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[12:20, 12:20] = 255  # a centred square: a shift, a rotation or a zoom moves its edges
    Image.fromarray(pixels).save(path)


@pytest.mark.parametrize("jitter", [{"translate": 0.2}, {"rotate": 30.0}, {"zoom": 0.3}])
def test_jitter_changes_training_images_only_and_reproducibly(tmp_path: Path, jitter: dict) -> None:
    items = []
    for i in range(8):
        _square(tmp_path / f"{i}.png")
        items.append((str(tmp_path / f"{i}.png"), 0))
    original = np.asarray(Image.open(tmp_path / "0.png"), np.float32)
    config = PipelineConfig(image_size=32, batch_size=8, seed=3, horizontal_flip=False, vertical_flip=False,
                            **jitter)

    def images(training: bool) -> np.ndarray:
        tf.random.set_seed(1)
        return next(iter(make_dataset(items, 2, config, _identity, training=training)))[0].numpy()

    changed = images(training=True)
    moved = [float(np.abs(image - original).max()) for image in changed]
    assert sum(m > 100 for m in moved) >= 6, moved  # nearly every image moved by more than a blur
    assert np.array_equal(changed, images(training=True))  # same seeds, same changes
    assert np.array_equal(images(training=False), np.stack([original] * 8))  # evaluation untouched
