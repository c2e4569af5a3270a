"""The core under faults a cluster has: late heartbeats, lost answers, failing GP fits, restarts, a
full disk, and a database written by the previous release."""
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from optimizer_svc import schema
from optimizer_svc.core import OptimizerCore
from optimizer_svc.db import Database
from optimizer_svc.errors import FailedPrecondition, ResourceExhausted
from optimizer_svc.gp import GaussianProcess
from optimizer_svc.gpyopt_backend import GPEISuggester
from optimizer_svc.storage_errors import storage_error

from .conftest import FakeClock, small_spec
from .test_core import run_trial

RELEASE_1 = Path(__file__).parent / "fixtures" / "release-1.db"


def test_a_late_report_takes_back_an_expired_lease_if_no_other_attempt_started(core, clock):
    core.create_study(small_spec(lease={"timeout_seconds": 10}))
    trial, lease = core.lease_trial("busy-node")
    core.report_progress(trial.id, lease.id, "head", 0, {"val_accuracy": 0.4})
    clock.advance(25)  # heartbeats starved by a busy node
    assert core.expire_leases() == 1
    assert core.get_trial(trial.id).state == "PENDING"
    decision, _, deadline = core.report_progress(trial.id, lease.id, "head", 1, {"val_accuracy": 0.5})
    assert decision == "continue" and deadline == clock() + 10
    t = core.get_trial(trial.id)
    assert (t.state, t.attempt, t.worker_id, t.error) == ("RUNNING", 1, "busy-node", "")
    assert [(m.attempt, m.epoch) for m in t.measurements] == [(1, 0), (1, 1)]  # one attempt, whole history
    assert core.metrics.lease_recoveries._value.get() == 1
    done = run_trial(core, trial, lease)
    assert done.state == "SUCCEEDED" and done.attempt == 1


def test_a_late_completion_is_accepted_too_but_not_once_the_trial_was_leased_again(core, clock):
    core.create_study(small_spec(lease={"timeout_seconds": 10}, budget={"parallel_trials": 1}))
    first, lease1 = core.lease_trial("w1")
    clock.advance(11)
    core.expire_leases()
    done = core.complete_trial(first.id, lease1.id, "SUCCEEDED", {"val_accuracy": 0.7}, {})
    assert (done.state, done.attempt) == ("SUCCEEDED", 1)
    second, lease2 = core.lease_trial("w1")
    clock.advance(11)
    core.expire_leases()
    again, lease3 = core.lease_trial("w2")  # attempt 2 has started: attempt 1 is stale for good
    assert again.id == second.id and again.attempt == 2
    with pytest.raises(FailedPrecondition):
        core.report_progress(second.id, lease2.id, "head", 0, {"val_accuracy": 0.5})


def test_a_retried_lease_request_gets_the_trial_it_was_granted(core):
    core.create_study(small_spec())
    trial, lease = core.lease_trial("w", request_id="req-1")
    again, lease_again = core.lease_trial("w", request_id="req-1")  # the first answer was lost
    assert (again.id, lease_again.id) == (trial.id, lease.id)
    other, _ = core.lease_trial("w", request_id="req-2")
    assert other.id != trial.id
    assert core.get_study(trial.study_id).trial_counts == {"RUNNING": 2}


def test_a_grant_nobody_received_goes_back_without_using_an_attempt(core):
    core.create_study(small_spec(budget={"max_attempts": 1}))
    trial, lease = core.lease_trial("gone")
    assert core.release_grant(trial.id, lease.id)
    t = core.get_trial(trial.id)
    assert (t.state, t.attempt, t.worker_id) == ("PENDING", 1, "")
    again, lease2 = core.lease_trial("w")
    assert again.id == trial.id and again.attempt == 1
    core.report_progress(again.id, lease2.id, "head", 0, {"val_accuracy": 0.5})
    assert not core.release_grant(again.id, lease2.id)  # used: the worker has it
    assert not core.release_grant(again.id, lease.id)


@pytest.mark.parametrize("algorithm", ["gp", "gpyopt"])
def test_a_failing_gp_fit_falls_back_to_a_random_point_and_is_counted(core, monkeypatch, algorithm):
    study = core.create_study(small_spec(budget={"trials_per_phase": 5, "initial_points": 2, "parallel_trials": 1,
                                                 "algorithm": algorithm}))

    def broken(self, *a, **k):
        raise ValueError("LinAlgError: not positive definite")
    if algorithm == "gpyopt":
        monkeypatch.setattr(GPEISuggester, "suggest", broken)
    else:
        monkeypatch.setattr(GaussianProcess, "fit", broken)
    for _ in range(5):
        run_trial(core, *core.lease_trial("w", study.id))
    assert core.metrics.proposal_fallbacks._value.get() == 3  # every proposal after the initial two
    trials = core.list_trials(study.id, phase=0)
    assert len({json.dumps(t.parameters, sort_keys=True) for t in trials}) == 5  # no repeats, no crash


def test_after_a_restart_running_trials_get_a_full_lease_to_reconnect(tmp_path):
    clock = FakeClock()
    core = OptimizerCore(str(tmp_path / "o.db"), clock=clock)
    core.create_study(small_spec(lease={"timeout_seconds": 60}))
    trial, lease = core.lease_trial("w")
    core.close()
    clock.advance(90)  # the optimizer was down longer than the lease
    core = OptimizerCore(str(tmp_path / "o.db"), clock=clock)
    assert core.expire_leases() == 0
    decision, _, deadline = core.report_progress(trial.id, lease.id, "", 0, {})
    assert decision == "continue" and core.get_trial(trial.id).attempt == 1
    core.close()


def test_a_full_disk_refuses_writes_with_a_retry_hint_and_loses_nothing(tmp_path):
    core = OptimizerCore(str(tmp_path / "o.db"))
    kept = core.create_study(small_spec())
    trial, lease = core.lease_trial("w", kept.id)
    pages = core.db.conn.execute("PRAGMA page_count").fetchone()[0]
    core.db.conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk full"
    created = [kept.id]
    with pytest.raises(sqlite3.Error) as failure:
        for i in range(1000):
            created.append(core.create_study(small_spec(name=f"study-{i}")).id)
    error = storage_error(failure.value)
    assert isinstance(error, ResourceExhausted) and error.retry_after_s > 0 and "disk full" in str(error)
    assert sorted(s.id for s in core.list_studies()) == sorted(created)  # nothing half-stored
    core.db.conn.execute(f"PRAGMA max_page_count = {pages * 100}")  # space freed
    assert core.create_study(small_spec(name="after")).name == "after"  # the same request passes now
    assert run_trial(core, trial, lease).state == "SUCCEEDED"
    core.close()


def test_a_database_of_the_previous_release_opens_and_keeps_every_study(tmp_path):
    db = tmp_path / "optimizer.db"
    shutil.copy(RELEASE_1, db)
    before = sqlite3.connect(db)
    rows = {t: before.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("studies", "phases", "trials", "measurements")}
    before.close()
    migrated = Database(str(db))
    assert migrated.schema_found == 1
    assert migrated.conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    assert Path(f"{db}.v1.bak").is_file()
    for table, old in rows.items():  # every old row, every old column, unchanged
        cols = len(old[0])
        new = [tuple(r)[:cols] for r in migrated.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()]
        assert new == [tuple(r) for r in old], table
    migrated.close()
    core = OptimizerCore(str(db), clock=FakeClock(1_700_000_500.0))
    studies = {s.name: s for s in core.list_studies()}
    assert {n: s.state for n, s in studies.items()} == {
        "finished-study": "COMPLETED", "active-study": "ACTIVE", "stopped-study": "STOPPED"}
    finished = studies["finished-study"]
    assert [len(core.list_trials(finished.id, phase=p.index)) for p in finished.phases] == [2, 2]
    best = core.best_trial(finished.id)
    assert best.value is not None and len(best.measurements) >= 2 and "checkpoint" in best.artifacts
    # the active study goes on: its pending trial is leased, its running one completes
    active = studies["active-study"]
    running = [t for t in core.list_trials(active.id) if t.state == "RUNNING"]
    assert len(running) == 1
    pending, lease = core.lease_trial("new-worker", active.id)
    assert pending.attempt == 2 and json.loads(pending.task_json)["artifacts_uri"].endswith("/attempt-2")
    assert run_trial(core, pending, lease).state == "SUCCEEDED"
    core.close()


def test_a_database_from_a_newer_release_is_refused(tmp_path):
    db = tmp_path / "new.db"
    OptimizerCore(str(db)).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.close()
    with pytest.raises(schema.SchemaError, match=f"schema version {schema.VERSION + 1}"):
        OptimizerCore(str(db))
