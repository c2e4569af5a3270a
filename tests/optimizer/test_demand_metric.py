"""The demand an autoscaler reads: trials studies could run now, although none is proposed yet."""
from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import small_spec
from .test_core import run_trial


def scrape(core) -> dict[tuple[str, tuple], float]:
    """The optimizer's exported samples, as Prometheus reads them from /metrics."""
    text = generate_latest(core.metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_demand_counts_trials_no_one_has_proposed_yet(core):
    study = core.create_study(small_spec(budget={"trials_per_phase": 5, "parallel_trials": 3}))
    samples = scrape(core)
    assert samples[("saga_trials", (("state", "PENDING"),))] == 0  # proposals happen at lease time
    assert samples[("saga_trials_runnable", (("study", study.id),))] == 3  # capped by parallel_trials
    assert samples[("saga_trainers_wanted", ())] == 3

    first = core.lease_trial("w1", study.id)
    second = core.lease_trial("w2", study.id)
    samples = scrape(core)
    assert samples[("saga_trials_runnable", (("study", study.id),))] == 1
    assert samples[("saga_trainers_wanted", ())] == 3  # two busy, one more could start

    run_trial(core, *first)
    run_trial(core, *second)
    for worker in ("w3", "w4", "w5"):
        core.lease_trial(worker, study.id)
    # All 5 trials of the phase are proposed and 3 run: nothing more until one ends.
    samples = scrape(core)
    assert samples[("saga_trials_runnable", (("study", study.id),))] == 0
    assert samples[("saga_trainers_wanted", ())] == 3


def test_a_requeued_trial_is_demand_and_a_finished_study_is_none(core):
    study = core.create_study(small_spec(budget={"trials_per_phase": 1, "parallel_trials": 2}))
    trial, lease = core.lease_trial("w1", study.id)
    assert scrape(core)[("saga_trials_runnable", (("study", study.id),))] == 0  # the phase's only trial runs
    core.complete_trial(trial.id, lease.id, "RELEASED", {}, {})
    assert scrape(core)[("saga_trials_runnable", (("study", study.id),))] == 1  # handed back: runnable again

    core.stop_study(study.id)
    samples = scrape(core)
    assert ("saga_trials_runnable", (("study", study.id),)) not in samples
    assert samples[("saga_trainers_wanted", ())] == 0
