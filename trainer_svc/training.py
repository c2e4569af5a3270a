"""Two-step training (seed: train the new head on a frozen base, then fine-tune from the
delimiting layer on), driven by a :class:`~trainer_svc.progress.Reporter`.

Artifacts under ``work_dir``: ``model.keras`` (best epoch by the objective, over all steps),
``head.keras`` (the model after the head step), ``history.csv`` (one row per epoch, with a
``step`` column: 0 head, 1 finetune) and ``tensorboard/<step>/``.
"""
from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from trainer_svc.errors import InfeasibleTrial
from trainer_svc.models import base_layer_count, compile_for_step, set_trainable
from trainer_svc.progress import Decision, Reporter, ReporterCallback
from trainer_svc.task import Objective, StepSpec

log = logging.getLogger(__name__)
STEP_INDEX = {"head": 0, "finetune": 1}


@dataclass
class TrainingResult:
    """What training produced; paths are local (the runner uploads them)."""

    objective_metric: str
    best_value: float | None                 # best objective over every epoch of every step
    histories: dict[str, list[dict[str, float]]]  # step -> per-epoch metrics
    stopped: Decision                        # CONTINUE when every step ran to its end
    base_layers: int
    checkpoint: Path | None                  # best model; None when no epoch finished
    head_checkpoint: Path | None             # None when no head step ran
    history_csv: Path
    tensorboard_dir: Path
    trainable_from: dict[str, int] = field(default_factory=dict)  # step -> first trainable layer


class _StepTag(keras.callbacks.Callback):
    """Adds the step number to the epoch logs just before CSVLogger writes them."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.index = STEP_INDEX[step]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["step"] = self.index


def train(model: keras.Model, steps: Sequence[StepSpec], train_ds: tf.data.Dataset,
          val_ds: tf.data.Dataset, reporter: Reporter, work_dir: Path, objective: Objective,
          heartbeat_every_s: float = 30.0, pretrained: bool = True) -> TrainingResult:
    """Runs ``steps`` in order on ``model`` (recompiling for each) and returns the result.

    ``pretrained``: the backbone holds learnt weights (freeze per step, BatchNorm frozen); False
    trains every layer in every step (:func:`~trainer_svc.models.set_trainable`).

    Raises :class:`InfeasibleTrial` on a non-finite loss or metric, or when the accelerator
    runs out of memory. Exceptions from the reporter (e.g. a lost lease) propagate unchanged.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("model.keras", "head.keras", "history.csv"):  # CSVLogger appends
        (work_dir / stale).unlink(missing_ok=True)
    mode = "max" if objective.goal == "maximize" else "min"
    result = TrainingResult(
        objective_metric=objective.metric, best_value=None, histories={},
        stopped=Decision.CONTINUE, base_layers=base_layer_count(model),
        checkpoint=None, head_checkpoint=None,
        history_csv=work_dir / "history.csv", tensorboard_dir=work_dir / "tensorboard")
    # One instance over all steps, so "best" spans both steps and a worse fine-tuning epoch
    # never overwrites the best head-step model.
    best_ckpt = keras.callbacks.ModelCheckpoint(
        work_dir / "model.keras", monitor=objective.metric, mode=mode, save_best_only=True)
    for step in steps:
        first = set_trainable(model, step.name, step.delimiting_layer, pretrained=pretrained)
        result.trainable_from[step.name] = first
        compile_for_step(model, step.optimizer, step.learning_rate)
        progress = ReporterCallback(reporter, step.name, heartbeat_every_s)
        callbacks = [
            keras.callbacks.TerminateOnNaN(),
            progress,
            best_ckpt,
            _StepTag(step.name),
            keras.callbacks.CSVLogger(str(result.history_csv), append=True),
            *_tensorboard(result.tensorboard_dir / step.name),
        ]
        log.info("step %s: %s lr=%g, %d epochs, layers from %d trainable",
                 step.name, step.optimizer, step.learning_rate, step.max_epochs, first)
        try:
            history = model.fit(train_ds, validation_data=val_ds, epochs=step.max_epochs,
                                callbacks=callbacks, verbose=0, shuffle=False)
        except tf.errors.ResourceExhaustedError as exc:
            raise InfeasibleTrial(f"out of memory in step {step.name}: {exc.message[:200]}") from None
        epochs = _epochs(history.history)
        _check_finite(step.name, epochs, progress)
        result.histories[step.name] = [{k: v for k, v in e.items() if k != "step"} for e in epochs]
        result.best_value = _best(result.best_value, epochs, objective)
        if step.name == "head":
            result.head_checkpoint = work_dir / "head.keras"
            model.save(result.head_checkpoint)
        if progress.decision is Decision.STOP_TRIAL:
            result.stopped = Decision.STOP_TRIAL
            log.info("stop_trial after step %s epoch %d", step.name, len(epochs) - 1)
            break
        if progress.decision is Decision.STOP_STEP:
            result.stopped = Decision.STOP_STEP
    if best_ckpt.best is not None and (work_dir / "model.keras").exists():
        result.checkpoint = work_dir / "model.keras"
    return result


def _tensorboard(log_dir: Path) -> list[keras.callbacks.Callback]:
    """TensorBoard logging when the tensorboard package is installed; a trial never fails
    for want of its logs."""
    if importlib.util.find_spec("tensorboard") is None:
        log.warning("tensorboard is not installed; no TensorBoard logs for this trial")
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, profile_batch=0)]


def _epochs(history: dict[str, list[Any]]) -> list[dict[str, float]]:
    count = max((len(v) for v in history.values()), default=0)
    return [{k: float(v[i]) for k, v in history.items() if i < len(v)} for i in range(count)]


def _check_finite(step: str, epochs: list[dict[str, float]], progress: ReporterCallback) -> None:
    bad = dict(progress.non_finite)
    for e in epochs:
        bad.update({k: v for k, v in e.items() if not math.isfinite(v)})
    if bad:
        raise InfeasibleTrial(f"non-finite {', '.join(sorted(bad))} in step {step}")


def _best(current: float | None, epochs: list[dict[str, float]], objective: Objective) -> float | None:
    values = [e[objective.metric] for e in epochs if objective.metric in e]
    if current is not None:
        values.append(current)
    if not values:
        return None
    return max(values) if objective.goal == "maximize" else min(values)
