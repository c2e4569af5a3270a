"""Two-step training (seed: train the new head on a frozen base, then fine-tune from the
delimiting layer on), driven by a :class:`~trainer_svc.progress.Reporter`.

What a trial scores (thesis 3.4.7, docs/TRIAL_TASK.md): the best epoch of its scored step
(``objective.step``; the last step unless the task says otherwise). Each step keeps its best
epoch's weights (Keras ``ModelCheckpoint``); fine-tuning starts from the best head epoch, not the
last one (thesis 3.4.8).

Artifacts under ``work_dir``: ``model.keras`` (the best epoch of the scored step), ``head.keras``
(the best epoch of the head step, which later phases start from), ``history.csv`` (one row per
epoch, with a ``step`` column: 0 head, 1 finetune) and ``tensorboard/<step>/``.
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
from trainer_svc.task import Objective, StepSpec, TrainingRecipe
from trial_contract.failures import DIVERGED, OUT_OF_MEMORY

log = logging.getLogger(__name__)
STEP_INDEX = {"head": 0, "finetune": 1}


@dataclass
class TrainingResult:
    """What training produced; paths are local (the runner uploads them)."""

    objective_metric: str
    best_value: float | None                 # the objective: best over the epochs of the scored step
    histories: dict[str, list[dict[str, float]]]  # step -> per-epoch metrics
    stopped: Decision                        # CONTINUE when every step ran to its end
    base_layers: int
    checkpoint: Path | None                  # the scored step's best epoch; None when no epoch finished
    head_checkpoint: Path | None             # the head step's best epoch; None when no head step ran
    history_csv: Path
    tensorboard_dir: Path
    trainable_from: dict[str, int] = field(default_factory=dict)  # step -> first trainable layer
    scored_step: str = ""                    # the step whose best epoch is the objective
    step_best: dict[str, float] = field(default_factory=dict)  # step -> its best objective value


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
          heartbeat_every_s: float = 30.0, recipe: TrainingRecipe | None = None,
          pretrained: bool = True) -> TrainingResult:
    """Runs ``steps`` in order on ``model`` (recompiling for each) and returns the result.

    After each step the model holds that step's best epoch. A trial stopped before its scored
    step (nonconvergence in the head step) scores the best epoch of the step it reached.
    ``pretrained``: the backbone holds learnt weights (freeze per step, BatchNorm frozen); False
    trains every layer in every step (:func:`~trainer_svc.models.set_trainable`).

    Raises :class:`InfeasibleTrial` on a non-finite loss or metric, or when the accelerator
    runs out of memory. Exceptions from the reporter (e.g. a lost lease) propagate unchanged.
    """
    recipe = recipe or TrainingRecipe()
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("model.keras", "head.keras", "history.csv", "head.weights.h5", "finetune.weights.h5"):
        (work_dir / stale).unlink(missing_ok=True)  # CSVLogger appends; checkpoints must be this run's
    mode = "max" if objective.goal == "maximize" else "min"
    scored = objective.step or steps[-1].name
    result = TrainingResult(
        objective_metric=objective.metric, best_value=None, histories={},
        stopped=Decision.CONTINUE, base_layers=base_layer_count(model),
        checkpoint=None, head_checkpoint=None,
        history_csv=work_dir / "history.csv", tensorboard_dir=work_dir / "tensorboard", scored_step=scored)
    scored_done = False
    for step in steps:
        first = set_trainable(model, step.name, step.delimiting_layer, pretrained=pretrained)
        result.trainable_from[step.name] = first
        compile_for_step(model, step.optimizer, step.learning_rate, momentum=recipe.momentum,
                         weight_decay=recipe.weight_decay, label_smoothing=recipe.label_smoothing)
        progress = ReporterCallback(reporter, step.name, heartbeat_every_s)
        best_weights = work_dir / f"{step.name}.weights.h5"
        callbacks = [
            keras.callbacks.TerminateOnNaN(),
            progress,
            keras.callbacks.ModelCheckpoint(best_weights, monitor=objective.metric, mode=mode,
                                            save_best_only=True, save_weights_only=True),
            *schedule_callbacks(recipe.lr_schedule, step.learning_rate, step.max_epochs),
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
            raise InfeasibleTrial(f"{OUT_OF_MEMORY} in step {step.name}: {exc.message[:200]}") from None
        epochs = _epochs(history.history)
        _check_finite(step.name, epochs, progress)
        result.histories[step.name] = [{k: v for k, v in e.items() if k != "step"} for e in epochs]
        value = _best(None, epochs, objective)
        if value is not None:
            result.step_best[step.name] = value
        if best_weights.exists():
            model.load_weights(best_weights)  # the next step, and the checkpoint, start from the best epoch
        if step.name == "head":
            result.head_checkpoint = work_dir / "head.keras"
            model.save(result.head_checkpoint)
        if epochs and not scored_done:  # the scored step, or the step reached last when stopped before it
            result.checkpoint = work_dir / "model.keras"
            model.save(result.checkpoint)
            result.best_value = value
            scored_done = step.name == scored
        if progress.decision is Decision.STOP_TRIAL:
            result.stopped = Decision.STOP_TRIAL
            log.info("stop_trial after step %s epoch %d", step.name, len(epochs) - 1)
            break
        if progress.decision is Decision.STOP_STEP:
            result.stopped = Decision.STOP_STEP
    return result


def cosine_rate(learning_rate: float, epochs: int, epoch: int) -> float:
    """The ``cosine`` schedule: the step's rate at its first epoch, decayed along half a cosine
    towards 0 after its last one (so the last epoch still learns)."""
    return learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def schedule_callbacks(name: str, learning_rate: float, epochs: int) -> list[keras.callbacks.Callback]:
    """The callbacks that apply learning-rate schedule ``name`` (trial_contract.recipe.LR_SCHEDULES)
    to a step of ``epochs`` epochs starting at ``learning_rate``."""
    if name == "constant":
        return []
    return [keras.callbacks.LearningRateScheduler(lambda epoch, _rate: cosine_rate(learning_rate, epochs, epoch))]


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
        raise InfeasibleTrial(f"{DIVERGED}: non-finite {', '.join(sorted(bad))} in step {step}")


def _best(current: float | None, epochs: list[dict[str, float]], objective: Objective) -> float | None:
    values = [e[objective.metric] for e in epochs if objective.metric in e]
    if current is not None:
        values.append(current)
    if not values:
        return None
    return max(values) if objective.goal == "maximize" else min(values)
