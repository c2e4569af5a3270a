"""Transfer learning without a model hub: pre-train a backbone on a *source* dataset in the store
and put its model file in the store, where studies name it in ``model.weights`` (what an
air-gapped hospital cluster does once). ``saga weights pretrain`` and ``saga demo`` both call
:func:`pretrain_weights`; ``saga weights upload`` calls :func:`upload_weights`.

The recipe is the trainer's own from-scratch recipe: the same tf.data pipeline and backbone
preprocessing as a trial, every layer trained with a BatchNorm momentum suited to a short run, and
the BatchNorm statistics recalibrated on the source images at the end, so the frozen backbone of
a later trial normalizes with statistics that describe what it learnt.
"""
from __future__ import annotations

import posixpath
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from trainer_svc.backbones import get_backbone
from trainer_svc.batchnorm import recalibrate_batch_norm
from trainer_svc.data import fetch_split
from trainer_svc.errors import DatasetError, WeightsError
from trainer_svc.evaluation import evaluate
from trainer_svc.models import build_model, compile_for_step, set_trainable
from trainer_svc.pipeline import PipelineConfig, make_dataset
from trainer_svc.training import schedule_callbacks
from trial_contract.recipe import LR_SCHEDULES, Augmentation

Say = Callable[[str], None]
WEIGHTS_SUFFIXES = (".keras", ".weights.h5")


@dataclass(frozen=True)
class PretrainConfig:
    """How to pre-train; ``options`` go to the ``keras.applications`` constructor."""

    backbone: str
    image_size: int = 32
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "Adam"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    validation_split: str | None = "validation"  # None: no held-out accuracy
    augmentation: Augmentation = field(default_factory=Augmentation)  # the trial recipe's (flips on)
    lr_schedule: str = "constant"                                     # or "cosine", as in a trial

    def __post_init__(self) -> None:
        get_backbone(self.backbone)  # KeyError listing the known names
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        for name, low in (("image_size", 32), ("epochs", 1), ("batch_size", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


@dataclass(frozen=True)
class PretrainResult:
    uri: str                       # where the model file is in the store
    train_accuracy: float          # last epoch, in training mode
    validation_accuracy: float | None  # after recalibration, in inference mode
    images: int
    classes: int
    seconds: float


def split_object_uri(uri: str) -> tuple[str, str]:
    """``s3://b/weights/m.keras`` -> (``s3://b/weights``, ``m.keras``): a store and a key."""
    parent, key = posixpath.split(uri.rstrip("/"))
    if not parent or not key:
        raise ValueError(f"{uri!r} names no object: give a store URI and a file name, "
                         "e.g. s3://saga/weights/mobilenetv2.keras")
    return parent, key


def pretrain_weights(dataset_uri: str, out_uri: str, config: PretrainConfig, *, cache_dir: Path | None = None,
                     say: Say = print) -> PretrainResult:
    """Pre-trains ``config.backbone`` on the dataset at ``dataset_uri`` (uploaded with ``saga data
    upload``) and stores the model file (``.keras``) at ``out_uri``."""
    from datastore import open_store

    if not out_uri.endswith(".keras"):
        raise ValueError(f"--out {out_uri!r}: the pre-trained model is stored as a .keras file")
    parent, key = split_object_uri(out_uri)
    started = time.monotonic()
    source = open_store(dataset_uri)
    with tempfile.TemporaryDirectory(prefix="saga-pretrain-") as tmp:
        cache = cache_dir or Path(tmp) / "cache"
        train_files = fetch_split(source, config.train_split, cache)
        val_files = None
        if config.validation_split:
            try:
                val_files = fetch_split(source, config.validation_split, cache)
            except DatasetError:  # a dataset without that split: no held-out accuracy
                val_files = None
        classes = train_files.class_names
        say(f"pre-training {config.backbone} at {config.image_size} px on {len(train_files.items)} images "
            f"of {len(classes)} classes from {dataset_uri}")
        model, train_acc, val_acc = pretrain_model(train_files.items, val_files.items if val_files else None,
                                                   classes, config, say)
        local = Path(tmp) / key
        model.save(local)
        uri = open_store(parent).put_file(key, local)
    return PretrainResult(uri=uri, train_accuracy=train_acc, validation_accuracy=val_acc,
                          images=len(train_files.items), classes=len(classes),
                          seconds=time.monotonic() - started)


def pretrain_model(train_items: list[tuple[str, int]], val_items: list[tuple[str, int]] | None,
                   classes: list[str], config: PretrainConfig,
                   say: Say = print) -> tuple[keras.Model, float, float | None]:
    """Trains a from-scratch model on local files; returns it with its last training accuracy and
    its validation accuracy after BatchNorm recalibration (None without validation images)."""
    keras.utils.set_random_seed(config.seed)
    entry = get_backbone(config.backbone)
    pipeline = PipelineConfig.with_augmentation(config.augmentation, image_size=config.image_size,
                                                batch_size=config.batch_size, seed=config.seed)
    train_ds = make_dataset(train_items, len(classes), pipeline, entry.preprocess_input, training=True)
    model = build_model(config.backbone, len(classes), config.image_size, None, **config.options)
    set_trainable(model, "head", pretrained=False)
    compile_for_step(model, config.optimizer, config.learning_rate)
    callbacks = [*schedule_callbacks(config.lr_schedule, config.learning_rate, config.epochs),
                 _EpochLine(config.epochs, say)]
    history = model.fit(train_ds, epochs=config.epochs, verbose=0, callbacks=callbacks)
    recalibrate_batch_norm(model, train_ds)
    val_acc = None
    if val_items:
        val_ds = make_dataset(val_items, len(classes), pipeline, entry.preprocess_input, training=False)
        val_acc = float(evaluate(model, val_ds, classes)["accuracy"])
        say(f"validation accuracy after BatchNorm recalibration: {val_acc:.3f}")
    return model, float(history.history["accuracy"][-1]), val_acc


class _EpochLine(keras.callbacks.Callback):
    """One progress line per epoch."""

    def __init__(self, epochs: int, say: Say) -> None:
        super().__init__()
        self.epochs, self.say, self.started = epochs, say, time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.say(f"epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', float('nan')):.4f}, "
                 f"accuracy {logs.get('accuracy', float('nan')):.3f} "
                 f"({time.monotonic() - self.started:.0f} s)")


def check_weights_file(path: Path) -> str:
    """What ``path`` holds (for the upload message); WeightsError when it is not a weights file
    a study can name in ``model.weights``."""
    if not path.is_file():
        raise WeightsError(f"{path} is not a file")
    if not path.name.endswith(WEIGHTS_SUFFIXES):
        raise WeightsError(f"{path.name}: a weights file ends in .keras (a saved model) or .weights.h5")
    if path.name.endswith(".weights.h5"):
        import h5py
        if not h5py.is_hdf5(path):
            raise WeightsError(f"{path.name} is not an HDF5 file")
        return "Keras weights (.weights.h5) of one backbone"
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any reason it cannot be read is the user's to fix
        raise WeightsError(f"cannot read {path.name} as a Keras model: {exc}") from None
    layers = sum(1 for layer in model.layers if layer.weights)
    if not layers:
        raise WeightsError(f"{path.name} holds a model without weights")
    return f"Keras model {model.name!r} ({layers} layers with weights, input {model.input_shape[1:]})"


def upload_weights(path: Path, out_uri: str) -> tuple[str, str]:
    """Checks ``path`` and puts it at ``out_uri`` (same suffix); returns (URI, what it holds)."""
    from datastore import open_store

    described = check_weights_file(path)
    parent, key = split_object_uri(out_uri)
    if not key.endswith(WEIGHTS_SUFFIXES) or Path(key).suffix != path.suffix:
        raise ValueError(f"{out_uri!r}: the stored name must end like the file ({path.name})")
    return open_store(parent).put_file(key, path), described
