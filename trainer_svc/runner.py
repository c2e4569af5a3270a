"""One trial, start to finish: the single entry point of a worker.

``run_task`` syncs the dataset, builds (or loads) the model, trains the task's steps, evaluates
the best checkpoint on validation and test, uploads artifacts under ``task.artifacts_uri`` and
returns flat metrics for CompleteTrial, with the dataset's baselines beside them
(:mod:`trainer_svc.baselines`). It knows nothing of leases: the reporter does.

A model trained from scratch (``model.weights`` null) trains its BatchNorm layers: the best
checkpoint's statistics are recalibrated on the training split before it is evaluated and
uploaded, so the stored model (what ``saga export`` serves) is the model that was evaluated.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from trainer_svc import artifacts as art
from trainer_svc.artifacts import StoreOpener, download_object, upload_artifacts
from trainer_svc.backbones import get_backbone
from trainer_svc.baselines import dataset_baselines
from trainer_svc.batchnorm import recalibrate_batch_norm
from trainer_svc.data import SplitFetcher, SplitFiles, check_manifest, fetch_split
from trainer_svc.errors import DatasetError, InfeasibleTrial, WeightsError
from trainer_svc.evaluation import evaluate
from trainer_svc.models import build_model, load_checkpoint
from trainer_svc.pipeline import PipelineConfig, make_dataset
from trainer_svc.progress import Decision, Reporter
from trainer_svc.task import TrialTask
from trial_contract.failures import OUT_OF_MEMORY
from trainer_svc.training import TrainingResult, train
from trial_contract.metrics import head_metric

log = logging.getLogger(__name__)


@dataclass
class TrialResult:
    """What a worker reports with CompleteTrial."""

    objective_value: float | None      # best validation objective over the epochs of the scored step
    metrics: dict[str, float]          # flat, finite: val_accuracy, test_mcc, base_layers, ...
    artifacts: dict[str, str]          # artifact name -> object URI
    stopped: Decision                  # CONTINUE, or the stop the reporter ordered
    report: dict[str, Any]             # the full metrics.json content


def run_task(task: TrialTask, open_store: StoreOpener, reporter: Reporter, cache_dir: Path,
             work_dir: Path, fetch: SplitFetcher = fetch_split,
             heartbeat_every_s: float = 30.0) -> TrialResult:
    """Runs ``task``; raises InfeasibleTrial (NaN, out of memory), InvalidTask / WeightsError /
    DatasetError (the task cannot run as given), or the reporter's own exceptions."""
    keras.utils.set_random_seed(task.seed)
    splits = _sync(task, open_store, fetch, cache_dir)
    classes = splits["train"].class_names
    entry = get_backbone(task.model.backbone)
    config = PipelineConfig.with_augmentation(task.training.augmentation, image_size=task.model.image_size,
                                              batch_size=task.training.batch_size, seed=task.seed)
    data = {name: make_dataset(files.items, len(classes), config, entry.preprocess_input,
                               training=name == "train") for name, files in splits.items()}
    baselines = _baselines(splits, cache_dir, task.seed)
    pretrained = task.model.weights is not None
    try:
        model = _initial_model(task, open_store, len(classes), work_dir / "inputs")
        result = train(model, task.steps, data["train"], data["validation"], reporter,
                       work_dir / "out", task.objective, heartbeat_every_s, recipe=task.training,
                       pretrained=pretrained)
        best = load_checkpoint(result.checkpoint) if result.checkpoint else model
        if not pretrained:  # shuffled training batches, as the layers saw them in training
            recalibrate_batch_norm(best, data["train"])
            if result.checkpoint:
                best.save(result.checkpoint)
        reports = {name: evaluate(best, data[name], classes)
                   for name in ("validation", "test") if name in data}
    except tf.errors.ResourceExhaustedError as exc:
        raise InfeasibleTrial(f"{OUT_OF_MEMORY}: {exc.message[:200]}") from None
    report = _report(task, result, reports)
    report["summary"].update(baselines)
    uris = upload_artifacts(open_store(task.artifacts_uri), {
        art.CHECKPOINT: result.checkpoint, art.HEAD_CHECKPOINT: result.head_checkpoint,
        art.HISTORY: result.history_csv, art.TENSORBOARD: result.tensorboard_dir}, report)
    return TrialResult(objective_value=result.best_value, metrics=report["summary"],
                       artifacts=uris, stopped=result.stopped, report=report)


def _sync(task: TrialTask, open_store: StoreOpener, fetch: SplitFetcher,
          cache_dir: Path) -> dict[str, SplitFiles]:
    store = open_store(task.dataset.uri)
    if task.dataset.manifest_sha256:
        check_manifest(store, task.dataset.manifest_sha256)
    names = {"train": task.dataset.train, "validation": task.dataset.validation}
    if task.dataset.test:
        names["test"] = task.dataset.test
    splits = {role: fetch(store, split, cache_dir) for role, split in names.items()}
    classes = splits["train"].class_names
    for role, files in splits.items():
        if files.class_names != classes:
            raise DatasetError(f"split {names[role]!r} has classes {files.class_names}, "
                               f"train has {classes}")
    return splits


def _baselines(splits: dict[str, SplitFiles], cache_dir: Path, seed: int) -> dict[str, float]:
    """The dataset's baselines; a trial never fails for want of them."""
    try:
        return dataset_baselines(splits, cache_dir, seed)
    except Exception as exc:  # noqa: BLE001 - any cause: the trial goes on without baselines
        log.warning("no baselines for this dataset: %s: %s", type(exc).__name__, exc)
        return {}


def _initial_model(task: TrialTask, open_store: StoreOpener, num_classes: int,
                   inputs: Path) -> keras.Model:
    if task.start_from is not None:
        path = download_object(open_store, task.start_from.uri, inputs, "start_from.uri")
        model = load_checkpoint(path)
        size, classes = model.input_shape[1], model.output_shape[-1]
        if size != task.model.image_size or classes != num_classes:
            raise WeightsError(f"start_from checkpoint takes {size} px and has {classes} classes; "
                               f"the task needs {task.model.image_size} px and {num_classes}")
        return model
    weights: str | Path | None = task.model.weights
    if weights is not None and weights != "imagenet":
        weights = download_object(open_store, weights, inputs, "model.weights")
    return build_model(task.model.backbone, num_classes, task.model.image_size, weights,
                       task.model.pooling, head_dropout=task.training.head_dropout, **task.model.options)


def _report(task: TrialTask, result: TrainingResult,
            reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    prefix = {"validation": "val", "test": "test"}
    # GPUs this worker trained on: the report's GPU-seconds are trial duration times this.
    summary: dict[str, float] = {"base_layers": float(result.base_layers),
                                 "gpus": float(len(tf.config.list_physical_devices("GPU")))}
    if result.best_value is not None:
        summary["objective"] = result.best_value
        summary[f"best_{task.objective.metric}"] = result.best_value
    if "head" in result.step_best:  # the head step's best, beside the objective (docs/TRIAL_TASK.md)
        summary[head_metric(task.objective.metric)] = result.step_best["head"]
    for name, rep in reports.items():
        p = prefix[name]
        summary[f"{p}_accuracy"] = rep["accuracy"]
        summary[f"{p}_mcc"] = rep["mcc"]
        for metric in ("f1", "precision", "recall", "specificity", "mcc"):
            summary[f"{p}_macro_{metric}"] = rep["macro"][metric]
    for step, epochs in result.histories.items():
        summary[f"epochs_{step}"] = float(len(epochs))
    return {"trial_id": task.trial_id, "objective_metric": task.objective.metric,
            "stopped": result.stopped.value, "summary": summary, "histories": result.histories,
            "trainable_from": result.trainable_from, "evaluation": reports}
