"""What trials teach: the objective value of a trial, the observations a proposer learns from, the best trial.

What a trial scores (thesis 3.4.7, docs/TRIAL_TASK.md): the best value of the objective metric over
the epochs of its scored step (``objective.step`` of its task: the head step in ``separate_steps``'
head phase, fine-tuning everywhere else). Epochs of the other step never count; the head step's best
value is stored beside the objective as ``head_<metric>``.
"""
from __future__ import annotations

from typing import Any

from trial_contract import head_metric

from .db import MeasurementRow, PointRow, TrialRow
from .spec import StudySpec
from .views import OBSERVED


def scored_step(task: dict[str, Any]) -> str:
    """The step a task's trial is scored on (tasks from before the contract: their last step)."""
    return (task.get("objective") or {}).get("step") or task["steps"][-1]["name"]


def score(task: dict[str, Any], measurements: list[MeasurementRow], metrics: dict[str, float],
          spec: StudySpec) -> tuple[float | None, dict[str, float]]:
    """(objective value, the completion's metrics with ``head_<metric>`` added).

    The value is the best of the scored step's epochs; without any (a client that reports only a
    completion) the completion's own value of the metric; for a trial stopped before its scored step
    began (nonconvergence in the head step), the best of the step it reached. A custom model's
    trial (saga.sdk's ask/tell) scores the value its completion tells, as Optuna's ``tell`` does.
    """
    m = spec.objective_metric
    by_step: dict[str, list[float]] = {}
    for x in measurements:
        if m in x.metrics:
            by_step.setdefault(x.step, []).append(x.metrics[m])
    best = max if spec.maximize else min
    out = dict(metrics)
    if spec.custom and m in metrics:  # the user's own code tells its trial's value (ask/tell)
        return metrics[m], out
    if "head" in by_step and scored_step(task) != "head":
        out.setdefault(head_metric(m), best(by_step["head"]))
    seen = by_step.get(scored_step(task))
    if seen:
        return best(seen), out
    if m in metrics:
        return metrics[m], out
    reached = [s["name"] for s in task["steps"] if s["name"] in by_step]
    return (best(by_step[reached[-1]]) if reached else None), out


def observations(trials: list[TrialRow] | list[PointRow], spec: StudySpec) -> list[tuple[dict[str, Any], float]]:
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
