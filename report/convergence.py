"""Convergence per phase, as GPyOpt's ``plot_convergence`` draws it (thesis figures 4.6, 4.8):
the distance between consecutive proposals and the best value found so far, by iteration.

Distances are Euclidean in the optimizer's unit cube (``optimizer_svc.space``: log-scaled floats in
log space, categoricals as their index spread over [0, 1]), so every parameter weighs the same.
Values are shown as the objective is (validation accuracy up), not negated as GPyOpt plots them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer_svc.space import Param, encode, parse_param

from .model import Phase, Study, Trial


@dataclass(frozen=True)
class Convergence:
    phase: str
    iterations: list[int]             # trial numbers within the phase, in proposal order
    trial_ids: list[str]
    values: list[float | None]        # the objective value of each, None when not observed (yet)
    best_so_far: list[float | None]   # None until the first observation
    distances: list[float]            # distances[i]: from proposal i to proposal i + 1


def phase_params(phase: Phase) -> list[Param]:
    """The phase's searched parameters, read back from the optimizer's ``space_json``."""
    return [parse_param(d["name"], {k: v for k, v in d.items() if k != "name"}, f"phases[{phase.index}].space")
            for d in phase.space]


def convergence(study: Study, phase: Phase) -> Convergence:
    trials = study.phase_trials(phase.index)
    params = phase_params(phase)
    values = [t.value if t.observed else None for t in trials]
    best: list[float | None] = []
    current: float | None = None
    for v in values:
        if v is not None and (current is None or (v > current if study.maximize else v < current)):
            current = v
        best.append(current)
    points = [_unit(params, t) for t in trials]
    distances = [float(np.linalg.norm(b - a)) for a, b in zip(points, points[1:])] if params else []
    return Convergence(phase.name, [i for i, _ in enumerate(trials)], [t.id for t in trials], values, best,
                       distances)


def _unit(params: list[Param], t: Trial) -> np.ndarray:
    return encode(params, {p.name: t.parameters[p.name] for p in params})


def observations(study: Study, trials: list[Trial], names: list[str]) -> list[tuple[dict[str, Any], float]]:
    """What the phase's proposer learnt from, as ``optimizer_svc.observations`` defines it: observed
    values to maximize, infeasible trials at the worst value seen."""
    sign = 1.0 if study.maximize else -1.0
    obs = [({n: t.parameters[n] for n in names}, sign * t.value) for t in trials if t.observed]
    if obs:
        worst = min(v for _, v in obs)
        obs += [({n: t.parameters[n] for n in names}, worst) for t in trials if t.state == "INFEASIBLE"]
    return obs
