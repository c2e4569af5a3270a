"""The Python API over a real optimizer on localhost gRPC: a custom model's study tuned by ask/tell,
its results as plain values and a DataFrame, and the trainers' side of the contract (a trainer
never leases a custom study's trial)."""
from __future__ import annotations

import io
import math
import time

import pytest

from saga.sdk import InvalidArgument, NotFound, Study
from tests.optimizer.conftest import service  # noqa: F401  (fixture)


def custom_spec(**over) -> dict:
    spec = {"name": "mlp", "model": {"family": "custom"},
            "search_space": {"units": {"type": "int", "low": 4, "high": 64},
                             "dropout": {"type": "float", "low": 0.0, "high": 0.5},
                             "activation": {"type": "categorical", "values": ["relu", "tanh"]}},
            "objective": {"metric": "val_accuracy", "goal": "maximize"},
            "budget": {"trials_per_phase": 4, "initial_points": 3, "parallel_trials": 2},
            "stopping": {"nonconvergence": {"threshold": 0.3, "epochs": 2}, "early_stopping": {"patience": 2}},
            "training": {"epochs": 6}, "seed": 3}
    spec.update(over)
    return spec


def accuracy(params: dict, epoch: int) -> float:
    """A learning curve whose plateau depends on the parameters: many units, little dropout, relu best."""
    top = 0.5 + 0.4 * math.log(params["units"]) / math.log(64) - 0.3 * params["dropout"]
    top += 0.05 if params["activation"] == "relu" else 0.0
    return min(top, 0.99) * min(epoch + 1, 3) / 3


def test_ask_tell_runs_a_custom_study_to_its_end(service):
    target, core = service
    study = Study.create(custom_spec(), optimizer=target)
    assert study.state == "ACTIVE" and study.best_trial is None
    with pytest.raises(LookupError):
        study.best_params
    # a trainer worker (no study id) gets nothing from a custom study
    assert core.lease_trial("trainer-1", timeout=0) is None
    stopped_early = 0
    while (trial := study.ask(timeout=30)) is not None:
        with trial:
            assert set(trial.params) == {"units", "dropout", "activation"} and trial.max_epochs == 6
            for epoch in range(trial.max_epochs):
                if not trial.report(epoch, {"val_accuracy": accuracy(trial.params, epoch), "loss": 1.0 / (epoch + 1)}):
                    stopped_early += 1
                    break
            trial.complete()
    assert study.state == "COMPLETED"
    assert stopped_early >= 1  # the plateau ends every trial by early stopping after 5 epochs at most
    trials = study.trials
    assert len(trials) == 4 and all(t.state in ("SUCCEEDED", "STOPPED_EARLY") for t in trials)
    best = max(trials, key=lambda t: t.value)
    assert study.best_trial.id == best.id and study.best_params == best.params
    assert study.best_value == pytest.approx(max(accuracy(best.params, e) for e in range(6)))
    df = study.trials_dataframe()
    assert list(df.index) == list(range(4))
    assert {"params_units", "params_dropout", "params_activation", "value", "state", "ended_by"} <= set(df.columns)
    assert df.loc[best.number, "value"] == best.value
    assert df.loc[best.number, "params_units"] == best.params["units"]
    log = io.StringIO()
    study.wait(progress=True, out=log)  # an ended study returns at once, with its trials listed
    assert log.getvalue().count("trial ") == 4 and "completed: 4/4" in log.getvalue()


def test_an_exception_fails_the_trial_and_a_retry_reruns_it(service):
    target, _ = service
    study = Study.create(custom_spec(budget={"trials_per_phase": 1, "max_attempts": 2}), optimizer=target)
    trial = study.ask(timeout=30)
    with pytest.raises(ZeroDivisionError):
        with trial:
            1 / 0
    again = study.ask(timeout=30)
    assert again.id == trial.id and again.params == trial.params  # re-queued, second attempt
    again.report(0, {"val_accuracy": 0.9})
    result = again.complete({"val_accuracy": 0.95})
    assert result.value == 0.95 and "ZeroDivisionError" in result.error
    assert study.ask(timeout=5) is None


def test_optimize_calls_the_objective_until_the_budget_is_spent(service):
    target, _ = service
    study = Study.create(custom_spec(strategy="random", budget={"trials_per_phase": 3, "initial_points": 1}),
                         optimizer=target)
    seen = []
    study.optimize(lambda trial: seen.append(trial.params) or accuracy(trial.params, 2))
    assert len(seen) == 3 and study.state == "COMPLETED"
    assert study.best_value == pytest.approx(max(accuracy(p, 2) for p in seen))


def test_errors_are_exceptions_naming_what_is_wrong(service):
    target, _ = service
    with pytest.raises(InvalidArgument, match="strategy: a custom model is searched in one phase"):
        Study.create(custom_spec(strategy="shared"), optimizer=target)
    with pytest.raises(InvalidArgument, match="search_space: a custom model needs at least one parameter"):
        Study.create(custom_spec(search_space={}), optimizer=target)
    with pytest.raises(InvalidArgument, match="dataset.uri"):
        Study.create({"name": "no data"}, optimizer=target)  # Saga's own trainers need a dataset
    with pytest.raises(NotFound):
        Study.get("st-nope", optimizer=target)
    study = Study.create(custom_spec(), optimizer=target)
    trial = study.ask(timeout=30)
    with pytest.raises(ValueError, match="not finite"):
        trial.report(0, {"val_accuracy": float("nan")})
    trial.infeasible("loss became NaN")
    with pytest.raises(RuntimeError, match="already finished"):
        trial.complete()


def test_the_lease_is_kept_alive_while_an_epoch_takes_longer_than_the_lease(service):
    target, _ = service
    study = Study.create(custom_spec(lease={"timeout_seconds": 2}, budget={"trials_per_phase": 1}),
                         optimizer=target)
    trial = study.ask(timeout=30)
    time.sleep(5)  # one long epoch: without the heartbeat the lease expires and the report is refused
    assert trial.report(0, {"val_accuracy": 0.8})
    assert trial.complete().value == 0.8
