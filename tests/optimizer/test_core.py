"""The optimizer core without gRPC: leases, attempts, completions, phases and durability."""
import json

import numpy as np
import pytest

from optimizer_svc.core import OptimizerCore, Progress
from optimizer_svc.db import Database
from optimizer_svc.errors import FailedPrecondition, InvalidArgument, NotFound
from optimizer_svc.proposer import PENDING_DISTANCE
from optimizer_svc.space import encode
from optimizer_svc.strategies import phase_params, PhaseContext
from optimizer_svc.spec import parse_spec

from .cheap import objective
from .conftest import small_spec


def run_trial(core, trial, lease, value=None, epochs=2, complete=True):
    task = json.loads(trial.task_json)
    acc = objective(trial.parameters) if value is None else value
    for step in task["steps"]:
        for e in range(epochs):
            decision, _, _ = core.report_progress(trial.id, lease.id, step["name"], e, {"val_accuracy": acc})
            if decision != "continue":
                break
        if decision == "stop_trial":
            break
    if complete:
        return core.complete_trial(trial.id, lease.id, "SUCCEEDED", {"base_layers": 50.0},
                                   {"head_checkpoint": f"s3://test-artifacts/{trial.id}/head.keras"})


def drain(core, study_id, **kw):
    while (got := core.lease_trial("w", study_id)) is not None:
        run_trial(core, *got, **kw)


def test_lease_expiry_requeues_until_the_attempt_limit(core, clock):
    study = core.create_study(small_spec(lease={"timeout_seconds": 10}))
    trial, lease = core.lease_trial("w1")
    clock.advance(9)
    core.report_progress(trial.id, lease.id, "head", 0, {"val_accuracy": 0.6})  # extends the lease
    clock.advance(9)
    assert core.expire_leases() == 0
    clock.advance(2)
    assert core.expire_leases() == 1
    t = core.get_trial(trial.id)
    assert (t.state, t.attempt) == ("PENDING", 2) and "expired" in t.error
    again, lease2 = core.lease_trial("w2")
    assert again.id == trial.id and again.attempt == 2 and json.loads(again.task_json)["attempt"] == 2
    clock.advance(11)
    core.expire_leases()
    assert core.get_trial(trial.id).state == "FAILED"  # max_attempts is 2
    # the measurements of the first attempt are kept
    assert [m.attempt for m in core.get_trial(trial.id).measurements] == [1]
    assert core.get_study(study.id).trial_counts == {"FAILED": 1}


def test_stale_lease_is_refused_and_a_repeated_completion_is_harmless(core, clock):
    core.create_study(small_spec(lease={"timeout_seconds": 5}))
    trial, lease = core.lease_trial("w1")
    clock.advance(6)
    assert core.expire_leases() == 1
    trial, lease2 = core.lease_trial("w2")  # another attempt started: the expired lease is stale for good
    with pytest.raises(FailedPrecondition):
        core.report_progress(trial.id, lease.id, "head", 0, {"val_accuracy": 0.5})
    with pytest.raises(FailedPrecondition):
        core.complete_trial(trial.id, lease.id, "SUCCEEDED", {"val_accuracy": 0.9}, {})
    done = core.complete_trial(trial.id, lease2.id, "SUCCEEDED", {"val_accuracy": 0.9}, {})
    again = core.complete_trial(trial.id, lease2.id, "SUCCEEDED", {"val_accuracy": 0.9}, {})
    assert done.state == again.state == "SUCCEEDED" and again.value == 0.9
    with pytest.raises(FailedPrecondition):  # a different completion under the same lease is not
        core.complete_trial(trial.id, lease2.id, "SUCCEEDED", {"val_accuracy": 0.1}, {})
    assert core.get_trial(trial.id).value == 0.9


def test_failures_retry_and_infeasible_does_not(core):
    core.create_study(small_spec())
    t, lease = core.lease_trial("w")
    assert core.complete_trial(t.id, lease.id, "FAILED", {}, {}, "CUDA error").state == "PENDING"
    t2, lease2 = core.lease_trial("w")
    assert t2.id == t.id and t2.attempt == 2
    assert core.complete_trial(t.id, lease2.id, "FAILED", {}, {}, "CUDA error").state == "FAILED"
    t3, lease3 = core.lease_trial("w")
    assert t3.id != t.id
    assert core.complete_trial(t3.id, lease3.id, "INFEASIBLE", {}, {}, "NaN loss").state == "INFEASIBLE"


def test_bad_reports_are_refused_without_changing_state(core):
    core.create_study(small_spec())
    t, lease = core.lease_trial("w")
    with pytest.raises(InvalidArgument, match="finite"):
        core.report_progress(t.id, lease.id, "head", 0, {"loss": float("nan")})
    with pytest.raises(InvalidArgument, match="epoch"):
        core.report_progress(t.id, lease.id, "head", -1, {"loss": 1.0})
    with pytest.raises(InvalidArgument, match="objective"):
        core.complete_trial(t.id, lease.id, "SUCCEEDED", {"loss": 0.1}, {})
    with pytest.raises(InvalidArgument, match="outcome"):
        core.complete_trial(t.id, lease.id, "GREAT", {}, {})
    with pytest.raises(NotFound):
        core.report_progress("st-nope-0000", lease.id, "head", 0, {"loss": 1.0})
    with pytest.raises(NotFound):
        core.get_study("st-nope")
    assert core.get_trial(t.id).state == "RUNNING" and core.get_trial(t.id).measurements == []


def test_nonconvergence_stops_the_trial_and_it_is_an_observation(core):
    core.create_study(small_spec(stopping={"nonconvergence": {"epochs": 2, "threshold": 0.5}}))
    t, lease = core.lease_trial("w")
    # Listing 3.1 with patience 2: two epochs under 0.5 are allowed, the third in a row stops
    for epoch, acc in enumerate((0.2, 0.3)):
        assert core.report_progress(t.id, lease.id, "head", epoch, {"val_accuracy": acc})[0] == "continue"
    decision, reason, _ = core.report_progress(t.id, lease.id, "head", 2, {"val_accuracy": 0.4})
    assert decision == "stop_trial" and "nonconvergence" in reason
    # the order stands on every later report
    assert core.report_progress(t.id, lease.id, "head", 3, {"val_accuracy": 0.9})[0] == "stop_trial"
    done = core.complete_trial(t.id, lease.id, "SUCCEEDED", {}, {})
    # stopped before its scored (fine-tuning) step began: it scores the step it reached
    assert done.state == "STOPPED_EARLY" and done.value == 0.9 and "nonconvergence" in done.stop_reason


@pytest.mark.parametrize("strategy, phases, first_steps", [
    ("shared", ["search", "layer"], [["head", "finetune"], ["finetune"]]),
    ("separate", ["search", "layer"], [["head", "finetune"], ["finetune"]]),
    ("separate_steps", ["head", "finetune", "layer"], [["head"], ["finetune"], ["finetune"]]),
    ("joint", ["search"], [["head", "finetune"]]),
    ("random", ["search"], [["head", "finetune"]]),
])
def test_strategies_chain_their_phases(core, strategy, phases, first_steps):
    study = core.create_study(small_spec(strategy))
    assert [p.name for p in study.phases] == phases
    drain(core, study.id)
    study = core.get_study(study.id)
    assert study.state == "COMPLETED" and all(p.done for p in study.phases)
    trials = core.list_trials(study.id)
    assert len(trials) == 4 * len(phases)
    for i, steps in enumerate(first_steps):
        phase_trials = [t for t in trials if t.phase == i]
        assert [s["name"] for s in json.loads(phase_trials[0].task_json)["steps"]] == steps
    for i in range(1, len(phases)):
        prev_best = core.best_trial(study.id, phase=i - 1)
        later = [t for t in trials if t.phase == i]
        for t in later:
            task = json.loads(t.task_json)
            # a later phase keeps the best parameters of the phase before and starts from its checkpoint
            kept = {k: v for k, v in prev_best.parameters.items() if k != "delimiting_layer"}
            assert {k: t.parameters[k] for k in kept} == kept
            assert task["start_from"]["uri"].endswith("head.keras")
    if phases[-1] == "layer":
        layers = [t.parameters["delimiting_layer"] for t in trials if t.phase == len(phases) - 1]
        assert all(isinstance(x, int) and 0 <= x <= 49 for x in layers)  # bound from base_layers=50
    if strategy in ("joint", "random"):
        assert all(0.0 <= t.parameters["delimiting_layer"] <= 1.0 for t in trials)


def test_a_phase_without_any_success_fails_the_study(core):
    study = core.create_study(small_spec(budget={"trials_per_phase": 2, "max_attempts": 1}))
    while (got := core.lease_trial("w")) is not None:
        core.complete_trial(got[0].id, got[1].id, "INFEASIBLE", {}, {}, "NaN loss")
    s = core.get_study(study.id)
    assert s.state == "FAILED" and "search" in s.message


def test_stop_study_tells_running_trials_to_stop(core):
    study = core.create_study(small_spec())
    t, lease = core.lease_trial("w")
    core.stop_study(study.id, "enough")
    decision, reason, _ = core.report_progress(t.id, lease.id, "head", 0, {"val_accuracy": 0.9})
    assert decision == "stop_trial" and "enough" in reason
    assert core.lease_trial("w") is None
    assert core.complete_trial(t.id, lease.id, "SUCCEEDED", {}, {}).state == "STOPPED_EARLY"


def test_state_survives_reopening_the_database(tmp_path, clock):
    db = str(tmp_path / "o.db")
    core = OptimizerCore(db, clock=clock)
    study = core.create_study(small_spec())
    for _ in range(3):
        run_trial(core, *core.lease_trial("w"))
    running, lease = core.lease_trial("w")
    core.report_progress(running.id, lease.id, "head", 0, {"val_accuracy": 0.5})
    before = [(t.id, t.state, t.value, t.parameters) for t in core.list_trials(study.id)]
    core.close()
    core = OptimizerCore(db, clock=clock)
    assert [(t.id, t.state, t.value, t.parameters) for t in core.list_trials(study.id)] == before
    # the lease is still valid after the restart, and proposals go on
    core.complete_trial(running.id, lease.id, "SUCCEEDED", {"val_accuracy": 0.8}, {})
    drain(core, study.id)
    assert core.get_study(study.id).state == "COMPLETED"
    core.close()


def test_proposals_are_deterministic_for_a_seed(tmp_path, clock):
    def params(path):
        c = OptimizerCore(str(tmp_path / path), clock=clock)
        c.create_study(small_spec(budget={"trials_per_phase": 6, "parallel_trials": 1}))
        out = []
        while (got := c.lease_trial("w")) is not None and len(out) < 6:
            out.append(got[0].parameters)
            run_trial(c, *got)
        c.close()
        return out
    first, second = params("a.db"), params("b.db")
    assert first == second and len(first) == 6 and len({json.dumps(p, sort_keys=True) for p in first}) == 6


def test_four_concurrent_proposals_are_distinct(core):
    study = core.create_study(small_spec(budget={"trials_per_phase": 30, "initial_points": 3, "parallel_trials": 4}))
    for _ in range(8):  # past the random initial design, into GP proposals
        run_trial(core, *core.lease_trial("w"))
    pending = [core.lease_trial(f"w{i}") for i in range(4)]
    spec = parse_spec(core.get_study(study.id).spec_json)
    space = phase_params(spec, "search", PhaseContext({}, None))
    points = [encode(space, {k: t.parameters[k] for k in ("backbone", "optimizer", "learning_rate")})
              for t, _ in pending]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.max(np.abs(points[i] - points[j])) >= PENDING_DISTANCE
    assert core.lease_trial("w5") is None  # parallel_trials = 4


def test_gp_beats_its_random_start(core):
    """After the initial design, EI proposals find better points than the random ones."""
    study = core.create_study(small_spec(budget={"trials_per_phase": 16, "initial_points": 5, "parallel_trials": 1}))
    while (got := core.lease_trial("w")) is not None:
        run_trial(core, *got)
        if core.get_study(study.id).current_phase > 0:
            break
    trials = [t for t in core.list_trials(study.id) if t.phase == 0]
    initial = max(t.value for t in trials[:5])
    assert max(t.value for t in trials[5:]) > initial


def test_a_released_trial_is_requeued_without_using_an_attempt(core):
    core.create_study(small_spec(budget={"max_attempts": 1}, artifacts_uri="/srv/runs"))
    t, lease = core.lease_trial("w")
    assert json.loads(t.task_json)["artifacts_uri"] == f"/srv/runs/studies/{t.study_id}/trials/{t.id}/attempt-1"
    released = core.complete_trial(t.id, lease.id, "RELEASED", {}, {}, "worker shutting down (SIGTERM)")
    assert released.state == "PENDING" and released.attempt == 2
    again, lease2 = core.lease_trial("w2")
    assert again.id == t.id
    assert json.loads(again.task_json)["artifacts_uri"].endswith(f"/trials/{t.id}/attempt-2")
    # the one allowed attempt is still there: a failure now is final, not the release before it
    assert core.complete_trial(t.id, lease2.id, "FAILED", {}, {}, "boom").state == "FAILED"


def test_watchers_hear_of_a_trial_before_the_phase_or_study_end_it_caused(core, clock):
    study = core.create_study(small_spec(budget={"trials_per_phase": 2, "parallel_trials": 1}))
    with core.subscribe(study.id) as events:
        drain(core, study.id)
        kinds = []
        while not events.empty():
            kinds.append(events.get_nowait().kind)
    assert kinds[-2:] == ["trial_finished", "study_finished"], kinds
    starts = [i for i, k in enumerate(kinds) if k == "phase_started"]
    assert starts and all(kinds[i - 1] == "trial_finished" for i in starts), kinds


def test_a_lease_that_expires_on_the_last_attempt_is_heard_as_finished_then_the_study_end(core, clock):
    study = core.create_study(small_spec(budget={"trials_per_phase": 1, "max_attempts": 1,
                                                 "max_failed_trials": 0}, lease={"timeout_seconds": 5}))
    with core.subscribe(study.id) as events:
        core.lease_trial("w1", study.id)
        clock.advance(6)
        assert core.expire_leases() == 1
        kinds = []
        while not events.empty():
            kinds.append(events.get_nowait().kind)
    assert core.get_study(study.id).state == "FAILED"
    assert kinds[-2:] == ["trial_finished", "study_finished"], kinds


def test_a_batch_of_progress_reports_answers_each_on_its_own_and_stores_the_good_ones(core):
    """What the server does with heartbeats that arrive while the core is busy: one transaction,
    each report its own answer; a refused one leaves the others stored."""
    core.create_study(small_spec())
    (t1, l1), (t2, l2), (t3, l3) = (core.lease_trial(f"w{i}") for i in range(3))
    assert core.report_progress(t1.id, l1.id, "head", 0, {"val_accuracy": 0.1})[0] == "continue"  # kept in memory
    out = core.report_progress_many([
        Progress(t1.id, l1.id, "head", 0, {"val_accuracy": 0.1}),   # a retry of a stored epoch
        Progress(t2.id, "not-its-lease", "head", 0, {"val_accuracy": 0.9}),
        Progress(t1.id, l1.id, "head", 1, {"val_accuracy": 0.1}),
        Progress(t1.id, l1.id, "head", 1, {"val_accuracy": 0.1}),   # a retry: stored once
        Progress(t2.id, l2.id, "head", -1, {"val_accuracy": 0.9}),  # invalid epoch
        Progress(t2.id, l2.id, "head", 0, {"val_accuracy": 0.9}),
        Progress(t1.id, l1.id, "head", 2, {"val_accuracy": 0.1}),
    ])
    assert isinstance(out[1], FailedPrecondition) and isinstance(out[4], InvalidArgument)
    # The same decisions as the same reports one by one: three epochs under the nonconvergence
    # threshold (patience 2) stop the trial, which needs the batch's own earlier epochs.
    alone = [core.report_progress(t3.id, l3.id, "head", e, {"val_accuracy": 0.1})[0] for e in (0, 1, 2)]
    assert [out[0][0], out[2][0], out[6][0]] == alone == ["continue", "continue", "stop_trial"]
    assert out[3][0] == "continue" and out[5][0] == "continue"
    assert [m.epoch for m in core.get_trial(t1.id).measurements] == [0, 1, 2]
    assert [m.epoch for m in core.get_trial(t2.id).measurements] == [0]


def test_a_nested_transaction_is_a_savepoint_undone_alone(core):
    study = core.create_study(small_spec())
    db = core.db
    with db.transaction():
        db.update_study(study.id, message="kept")
        with pytest.raises(RuntimeError):
            with db.transaction():
                db.update_study(study.id, state="STOPPED")
                raise RuntimeError("refused")
    assert (core.get_study(study.id).state, core.get_study(study.id).message) == ("ACTIVE", "kept")


def test_proposals_read_each_trial_as_last_committed(core, tmp_path):
    """The parameters decoded once per trial and kept between proposals read what a fresh
    connection reads, as trials are added and change state."""
    study = core.create_study(small_spec(budget={"trials_per_phase": 8}))
    fresh = lambda: Database(str(tmp_path / "opt.db")).points(study.id, 0)  # noqa: E731
    for _ in range(3):
        got = [core.lease_trial(f"w{i}") for i in range(2)]
        assert core.db.points(study.id, 0) == fresh()
        run_trial(core, *got[0])
        assert core.db.points(study.id, 0) == fresh()
    rows = core.db.points(study.id, 0)
    assert len(rows) == 6 and {r.state for r in rows} == {"SUCCEEDED", "RUNNING"}
    assert [r.params for r in rows] == [core.db.trial(f"{study.id}-{i:04d}").params for i in range(6)]


def test_the_epochs_kept_for_stopping_rules_go_when_their_attempt_ends(core, clock):
    """Only running attempts' epochs stay in memory: ended ones would grow the heap that every
    garbage collection walks (pauses of 100 ms under 500 workers), and a new attempt starts empty."""
    core.create_study(small_spec(lease={"timeout_seconds": 10}))
    (done, l_done), (lost, l_lost), (running, l_running) = (core.lease_trial(f"w{i}") for i in range(3))
    for t, lease in ((done, l_done), (lost, l_lost), (running, l_running)):
        run_trial(core, t, lease, value=0.9, epochs=1, complete=False)
    core.complete_trial(done.id, l_done.id, "SUCCEEDED", {"base_layers": 50.0},
                        {"head_checkpoint": f"s3://test-artifacts/{done.id}/head.keras"})
    clock.advance(6)
    core.report_progress(running.id, l_running.id, "head", 1, {"val_accuracy": 0.9})
    clock.advance(6)
    core.expire_leases()                                         # `lost` stopped heartbeating
    assert {key[0] for key in core._histories} == {running.id}
    again, lease = core.lease_trial("w9")
    assert again.id == lost.id
    assert core.report_progress(again.id, lease.id, "head", 0, {"val_accuracy": 0.9})[0] == "continue"
    assert [m.epoch for m in core.get_trial(lost.id).measurements if m.attempt == 2] == [0]
