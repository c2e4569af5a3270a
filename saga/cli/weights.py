"""``saga weights pretrain|upload``: transfer-learning weights for studies without a model hub.

``pretrain SRC_DATASET_URI --backbone NAME --out URI`` trains a backbone on a source dataset
uploaded with ``saga data upload`` and stores the model file; ``upload FILE URI`` stores a weights
file made elsewhere. Either prints the URI a study names in ``model.weights``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trial_contract.recipe import LR_SCHEDULES  # light: no TensorFlow behind --help


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    pre = sub.add_parser("pretrain", help="pre-train a backbone on a dataset in the store and store its weights")
    pre.add_argument("dataset_uri", metavar="SRC_DATASET_URI",
                     help="source dataset (made by saga data upload): s3://bucket/prefix or a directory")
    pre.add_argument("--backbone", required=True, help="keras.applications model name, e.g. MobileNetV2")
    pre.add_argument("--out", required=True, metavar="STORE_URI",
                     help="where the model file goes, e.g. s3://saga/weights/mobilenetv2-source.keras")
    pre.add_argument("--image-size", type=int, default=32,
                     help="input size in px; use the image_size of the studies that will use it (default 32)")
    pre.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    pre.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    pre.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    pre.add_argument("--option", action="append", default=[], metavar="KEY=JSON",
                     help="backbone constructor argument, e.g. --option alpha=0.35 (repeatable); "
                          "studies must give the same model.options")
    pre.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                     help="learning rate per epoch, as a study's training.lr_schedule (default constant)")
    pre.add_argument("--augmentation", default=None, metavar="JSON",
                     help="as a study's training.augmentation, e.g. '{\"vertical_flip\": false, \"translate\": 0.1}' "
                          "(default: both flips, no jitter)")
    pre.add_argument("--split", default="train", help="split to train on (default train)")
    pre.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    pre.add_argument("--cache-dir", type=Path, default=None,
                     help="dataset cache (default: a temporary folder)")
    up = sub.add_parser("upload", help="check a weights file (.keras or .weights.h5) and store it")
    up.add_argument("file", type=Path, metavar="FILE")
    up.add_argument("out", metavar="STORE_URI", help="e.g. s3://saga/weights/resnet50-hospital.weights.h5")


def _options(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE, e.g. alpha=0.35")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def _augmentation(text: str | None):
    """--augmentation checked by the trial contract's own model (its bounds, its field names)."""
    from pydantic import ValidationError

    from trial_contract.recipe import Augmentation

    if text is None:
        return Augmentation()
    try:
        return Augmentation.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "value"
        raise ValueError(f"--augmentation: {where}: {first['msg']}") from None


def run(args: argparse.Namespace) -> int:
    from datastore.store import StoreError
    from trainer_svc.errors import TrainerError

    try:
        return _pretrain(args) if args.action == "pretrain" else _upload(args)
    except (TrainerError, StoreError, ValueError, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2


def _pretrain(args: argparse.Namespace) -> int:
    from saga.cli.progress import Step

    with Step("importing TensorFlow"):  # tens of seconds on a busy machine: never silent
        from trainer_svc.pretrain import PretrainConfig, pretrain_weights

    config = PretrainConfig(backbone=args.backbone, image_size=args.image_size, epochs=args.epochs,
                            batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                            options=_options(args.option), train_split=args.split,
                            augmentation=_augmentation(args.augmentation), lr_schedule=args.lr_schedule)
    result = pretrain_weights(args.dataset_uri, args.out, config, cache_dir=args.cache_dir,
                              say=lambda line: print(line, flush=True))
    held_out = ("" if result.validation_accuracy is None
                else f", validation accuracy {result.validation_accuracy:.3f}")
    print(f"stored {result.uri} ({result.images} images, {result.classes} classes, "
          f"train accuracy {result.train_accuracy:.3f}{held_out}, {result.seconds:.0f} s)")
    print(f"use it in a study: model: {{weights: {result.uri}, image_size: {args.image_size}}}")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from trainer_svc.pretrain import upload_weights

    uri, described = upload_weights(args.file, args.out)
    print(f"stored {uri}: {described}")
    print(f"use it in a study: model: {{weights: {uri}}}")
    return 0
