"""Two-step training: the reporter sees every epoch and its decisions are obeyed; a trial scores
the best epoch of its scored step (fine-tuning), which starts from the best head epoch; NaN loss
makes the trial infeasible."""
from __future__ import annotations

import csv
import itertools
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from trainer_svc.backbones import get_backbone
from trainer_svc.errors import InfeasibleTrial
from trainer_svc.evaluation import evaluate
from trainer_svc.models import base_layer_count, build_model, load_checkpoint
from trainer_svc.pipeline import PipelineConfig, make_dataset
from trainer_svc.progress import Decision, ReporterCallback
from trainer_svc.task import DelimitingLayer, Objective, StepSpec
from trainer_svc.training import train

HEAD = StepSpec("head", "Adam", 0.001, 2)
FINETUNE = StepSpec("finetune", "SGD", 0.001, 2, DelimitingLayer(relative=0.75))
OBJECTIVE = Objective("val_accuracy", "maximize")
# A seed backbone with few layers: tracing a 150-layer graph costs ~20 s per compile on 2 cores.
BACKBONE = "VGG16"


@pytest.fixture(scope="module")
def data(splits: dict[str, list[tuple[str, int]]]) -> dict[str, tf.data.Dataset]:
    config = PipelineConfig(image_size=32, batch_size=8, seed=1)
    pre = get_backbone(BACKBONE).preprocess_input
    return {"train": make_dataset(splits["train"], 3, config, pre, training=True),
            "validation": make_dataset(splits["validation"], 3, config, pre, training=False)}


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model(BACKBONE, 3, 32)


def test_two_steps_report_every_epoch_and_keep_each_steps_best_epoch(data, reporter, tmp_path: Path) -> None:
    model = _model()
    result = train(model, [HEAD, FINETUNE], data["train"], data["validation"], reporter, tmp_path,
                   OBJECTIVE, heartbeat_every_s=0.0)
    assert [(s, e) for s, e, _ in reporter.reports] == [("head", 0), ("head", 1),
                                                         ("finetune", 0), ("finetune", 1)]
    for _, _, metrics in reporter.reports:
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(metrics)
    assert reporter.heartbeats == 4 * 4  # 30 images / batch 8 = 4 batches, 4 epochs
    assert result.stopped is Decision.CONTINUE
    n = base_layer_count(model)
    assert result.base_layers == n and result.trainable_from == {"head": n, "finetune": int(n * 0.75)}
    assert [len(result.histories[s]) for s in ("head", "finetune")] == [2, 2]
    best_of = {s: max(e["val_accuracy"] for e in result.histories[s]) for s in ("head", "finetune")}
    # The trial scores its fine-tuning step (thesis 3.4.7); the head step's best is kept beside it.
    assert result.scored_step == "finetune" and result.best_value == best_of["finetune"]
    assert result.step_best == best_of
    # model.keras holds the best fine-tuning epoch; head.keras the best head epoch
    for path, value in ((result.checkpoint, best_of["finetune"]), (result.head_checkpoint, best_of["head"])):
        assert evaluate(load_checkpoint(path), data["validation"], ["a", "b", "c"])["accuracy"] == pytest.approx(value)
    rows = list(csv.DictReader(result.history_csv.open()))
    assert [(r["step"], r["epoch"]) for r in rows] == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    for step in ("head", "finetune"):
        assert any((result.tensorboard_dir / step).rglob("events.out.tfevents.*"))


def test_stop_step_ends_only_the_current_step(data, scripted, tmp_path: Path) -> None:
    reporter = scripted({("head", 0): Decision.STOP_STEP})
    result = train(_model(), [StepSpec("head", "Adam", 0.001, 3), StepSpec("finetune", "Adam", 0.001, 1,
                                                                           DelimitingLayer(index=15))],
                   data["train"], data["validation"], reporter, tmp_path, OBJECTIVE)
    assert [(s, e) for s, e, _ in reporter.reports] == [("head", 0), ("finetune", 0)]
    assert result.stopped is Decision.STOP_STEP


def test_stop_trial_skips_remaining_steps(data, scripted, tmp_path: Path) -> None:
    reporter = scripted({("head", 0): Decision.STOP_TRIAL})
    result = train(_model(), [StepSpec("head", "Adam", 0.001, 3), FINETUNE], data["train"],
                   data["validation"], reporter, tmp_path, OBJECTIVE)
    assert [(s, e) for s, e, _ in reporter.reports] == [("head", 0)]
    assert result.stopped is Decision.STOP_TRIAL and list(result.histories) == ["head"]
    assert result.head_checkpoint.is_file() and result.checkpoint.is_file()


def _val_loss(model: keras.Model, dataset: tf.data.Dataset) -> float:
    """The validation loss as fit() reports it (from the softmax's logits, so never clipped)."""
    model.compile(loss="sparse_categorical_crossentropy")
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["loss"])


LOSS = Objective("val_loss", "minimize")


def test_finetuning_starts_from_the_best_head_epoch(data, reporter, tmp_path: Path) -> None:
    # "Best" as the highest validation loss: training lowers it, so the best head epoch is an early
    # one, not the last. A fine-tuning step that cannot move the weights then shows in its first
    # epoch the weights it started from.
    worst_loss = Objective("val_loss", "maximize")
    still = StepSpec("finetune", "SGD", 1e-12, 1, DelimitingLayer(relative=1.0))
    result = train(_model(), [StepSpec("head", "Adam", 0.01, 3), still], data["train"], data["validation"],
                   reporter, tmp_path, worst_loss)
    head = [e["val_loss"] for e in result.histories["head"]]
    assert max(head) > head[-1], f"the setup needs a head step whose last epoch is not its best: {head}"
    assert result.histories["finetune"][0]["val_loss"] == pytest.approx(max(head), rel=1e-5)
    assert _val_loss(load_checkpoint(result.head_checkpoint), data["validation"]) == pytest.approx(max(head), rel=1e-4)


def test_diverging_finetuning_scores_the_finetuning_value(data, reporter, tmp_path: Path) -> None:
    # Adam at learning rate 10 on the classification block: the loss explodes but stays finite.
    wild = StepSpec("finetune", "Adam", 10.0, 1, DelimitingLayer(relative=1.0))
    result = train(_model(), [StepSpec("head", "Adam", 0.1, 3), wild], data["train"], data["validation"],
                   reporter, tmp_path, LOSS)
    head = min(e["val_loss"] for e in result.histories["head"])
    finetune = min(e["val_loss"] for e in result.histories["finetune"])
    assert finetune > 2 * head, "the setup needs a fine-tuning step that diverges"
    assert result.best_value == finetune and result.step_best["head"] == head  # not the head step's value
    assert _val_loss(load_checkpoint(result.checkpoint), data["validation"]) == pytest.approx(finetune, rel=1e-4)


def test_nan_loss_is_infeasible_and_never_reported(data, reporter, tmp_path: Path) -> None:
    # A learning rate far beyond the contract's bound: the trainer survives NaN however it comes.
    exploding = StepSpec.model_construct(name="finetune", optimizer="Adam", learning_rate=1e30, max_epochs=2,
                                         delimiting_layer=DelimitingLayer(index=0))
    with pytest.raises(InfeasibleTrial, match="diverged: non-finite"):
        train(_model(), [exploding],
              data["train"], data["validation"], reporter, tmp_path, OBJECTIVE)
    assert reporter.reports == []


def test_heartbeat_is_rate_limited_and_reporter_errors_propagate(scripted) -> None:
    reporter = scripted()
    ticks = itertools.count()
    callback = ReporterCallback(reporter, "head", heartbeat_every_s=3.0, clock=lambda: float(next(ticks)))
    callback.on_train_begin()
    for batch in range(10):  # clock 1..10: beats at 3, 6, 9
        callback.on_train_batch_end(batch)
    assert reporter.heartbeats == 3

    class LeaseLost(Exception):
        pass

    class Failing:
        def report(self, step: str, epoch: int, metrics: dict[str, float]) -> Decision:
            raise LeaseLost("lease expired")

        def heartbeat(self) -> None:
            pass

    callback = ReporterCallback(Failing(), "head")
    callback.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    with pytest.raises(LeaseLost):
        callback.on_epoch_end(0, {"loss": 1.0})
    callback = ReporterCallback(reporter, "head")
    callback.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    callback.on_epoch_end(0, {"loss": float("nan"), "val_accuracy": 0.5})
    assert callback.non_finite == {"loss": pytest.approx(float("nan"), nan_ok=True)}
    assert callback.model.stop_training and len(reporter.reports) == 0


def test_cosine_schedule_decays_each_steps_rate_and_restarts_for_the_next(data, reporter, tmp_path: Path) -> None:
    from trainer_svc.task import TrainingRecipe

    steps = [StepSpec("head", "Adam", 0.004, 4), StepSpec("finetune", "Adam", 0.002, 2, DelimitingLayer(index=15))]
    result = train(_model(), steps, data["train"], data["validation"], reporter, tmp_path, OBJECTIVE,
                   recipe=TrainingRecipe(lr_schedule="cosine"))
    rates = {s: [e["learning_rate"] for e in result.histories[s]] for s in ("head", "finetune")}
    assert rates["head"] == pytest.approx([0.004, 0.004 * 0.8536, 0.002, 0.004 * 0.1464], rel=1e-3)
    assert rates["finetune"] == pytest.approx([0.002, 0.001], rel=1e-3)
    model = _model()  # the thesis's constant rate stays the default
    train(model, steps[:1], data["train"], data["validation"], reporter, tmp_path / "c", OBJECTIVE)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.004)
