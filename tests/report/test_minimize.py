"""A study that minimizes (validation loss): best so far goes down, the surrogate stays in loss units."""
from __future__ import annotations

import numpy as np

from report.convergence import convergence
from report.model import Phase, Study, Trial
from report.surrogate import surface


def loss_study() -> Study:
    xs = [0.1, 0.9, 0.5, 0.3, 0.7]
    trials = [Trial(id=f"t{i}", phase=0, number=i, state="SUCCEEDED", parameters={"x": x}, task={}, attempt=1,
                    value=(x - 0.3) ** 2 + 0.1, stop_reason="", error="", metrics={}, artifacts={}, worker_id="w",
                    created=1.0, started=2.0, ended=3.0) for i, x in enumerate(xs)]
    phase = Phase(0, "layer", 5, 5, 5, True, "t3", [{"name": "x", "type": "float", "low": 0.0, "high": 1.0}])
    return Study(id="st", name="loss", state="COMPLETED", message="", spec={
        "objective": {"metric": "val_loss", "goal": "minimize"}, "seed": 1}, phases=[phase], current_phase=0,
        trial_counts={"SUCCEEDED": 5}, created=0.0, updated=4.0, trials=trials, best_trial_id="t3", read_at=5.0)


def test_a_minimized_objective_converges_downwards_and_its_surrogate_keeps_loss_units():
    study = loss_study()
    c = convergence(study, study.phases[0])
    values = [t.value for t in study.trials]
    assert c.best_so_far == list(np.minimum.accumulate(values))
    s, why = surface(study, study.phases[0])
    assert s is not None, why
    assert sorted(v for _, v in s.observed) == sorted(values)  # losses, not negated
    low, high = min(values), max(values)
    assert low - 0.2 < float(np.min(s.mean)) and float(np.max(s.mean)) < high + 0.2
    # the lowest predicted loss lies near the best trial (x = 0.3), not near the worst (x = 0.9)
    assert abs(s.axes[0][int(np.argmin(s.mean))] - 0.3) < 0.25
