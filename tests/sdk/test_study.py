"""A study Saga's trainers run, followed from Python: `Study.create` from a spec file, `wait` while a
worker trains it over real localhost gRPC, the results, and how `wait` ends early (timeout, failure)."""
from __future__ import annotations

import io

import pytest
import yaml

from saga.sdk import Study, StudyFailed
from tests.optimizer.cheap import CheapWorker
from tests.optimizer.conftest import service, small_spec  # noqa: F401  (fixture)


def test_wait_follows_a_running_study_to_its_end(service, tmp_path):
    target, core = service
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(small_spec("joint", budget={"trials_per_phase": 3, "parallel_trials": 1})))
    study = Study.create(spec, optimizer=target)
    with pytest.raises(TimeoutError, match="still active"):
        study.wait(progress=False, timeout=0.5)  # nobody trains it yet: the study goes on
    worker = CheapWorker(target, study.id, "w")
    worker.start()
    log = io.StringIO()
    assert study.wait(progress=True, out=log) is study
    worker.join(30)
    assert worker.error is None and study.state == "COMPLETED"
    lines = log.getvalue().splitlines()
    assert sum(line.startswith("trial ") for line in lines) == 3  # each trial once, as it ended
    assert lines[-1].startswith(f"{study.id} completed: 3/3 trials finished")
    best = core.best_trial(study.id)
    assert study.best_params == best.parameters and study.best_value == best.value
    assert f"best {best.value:.4f} ({best.id})" in lines[-1]
    df = study.trials_dataframe()
    assert len(df) == 3 and df["value"].max() == best.value
    assert {"params_backbone", "params_optimizer", "params_learning_rate"} <= set(df.columns)


def test_wait_raises_when_asked_and_the_study_fails(service):
    target, core = service
    study = Study.create(small_spec(budget={"max_attempts": 1, "max_failed_trials": 1}), optimizer=target)
    trial, lease = core.lease_trial("w", study.id)
    core.complete_trial(trial.id, lease.id, "FAILED", {}, {}, "OSError: disk full")
    assert study.wait(progress=False).state == "FAILED"  # by default it just returns
    with pytest.raises(StudyFailed, match="ended failed: 1 trial failed in a row .*last: OSError: disk full"):
        study.wait(progress=False, raise_on_failure=True)
