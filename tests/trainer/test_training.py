"""Two-step training: the reporter sees every epoch and its decisions are obeyed; the best
checkpoint spans both steps; NaN loss makes the trial infeasible."""
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


def test_two_steps_report_every_epoch_and_keep_best_checkpoint(data, reporter, tmp_path: Path) -> None:
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
    all_val = [e["val_accuracy"] for s in ("head", "finetune") for e in result.histories[s]]
    assert result.best_value == max(all_val)
    # model.keras holds the best epoch over both steps, not the last one
    best = load_checkpoint(result.checkpoint)
    assert evaluate(best, data["validation"], ["a", "b", "c"])["accuracy"] == pytest.approx(result.best_value)
    assert result.head_checkpoint.is_file()
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


def test_nan_loss_is_infeasible_and_never_reported(data, reporter, tmp_path: Path) -> None:
    with pytest.raises(InfeasibleTrial, match="non-finite"):
        train(_model(), [StepSpec("finetune", "Adam", 1e30, 2, DelimitingLayer(index=0))],
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
