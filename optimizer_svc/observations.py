"""What trials teach: the objective value of a trial, the observations a proposer learns from, the best trial."""
from __future__ import annotations

from typing import Any

from .db import MeasurementRow, TrialRow
from .spec import StudySpec
from .views import OBSERVED


def objective_value(measurements: list[MeasurementRow], metrics: dict[str, float], spec: StudySpec) -> float | None:
    """The best value of the objective metric over every reported epoch and the final metrics."""
    m = spec.objective_metric
    seen = [x.metrics[m] for x in measurements if m in x.metrics]
    if m in metrics:
        seen.append(metrics[m])
    if not seen:
        return None
    return max(seen) if spec.maximize else min(seen)


def observations(trials: list[TrialRow], spec: StudySpec) -> list[tuple[dict[str, Any], float]]:
    """(parameters, value to maximize); infeasible trials count as the worst value seen, so the GP avoids them."""
    sign = 1.0 if spec.maximize else -1.0
    obs = [(t.params, sign * t.value) for t in trials if t.state in OBSERVED and t.value is not None]
    if obs:
        worst = min(v for _, v in obs)
        obs += [(t.params, worst) for t in trials if t.state == "INFEASIBLE"]
    return obs


def best_of(trials: list[TrialRow], spec: StudySpec) -> TrialRow | None:
    """The best observed trial; ties go to the earlier trial."""
    done = [t for t in trials if t.state in OBSERVED and t.value is not None]
    if not done:
        return None
    if spec.maximize:
        return max(done, key=lambda t: (t.value, -t.number))
    return min(done, key=lambda t: (t.value, t.number))
