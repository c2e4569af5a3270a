"""The GP surrogate and Expected Improvement of a one- or two-dimensional phase (thesis figure 4.9),
as GPyOpt's ``plot_acquisition`` draws them: refit from the phase's stored observations with the
optimizer's own proposer (the study's ``budget.algorithm``), evaluated on a grid.

Parameters with a single possible value do not count as dimensions (they are held at that value).
Values are the objective as the study states it (validation accuracy up).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer_svc.proposer import derive_seed, make_proposer
from optimizer_svc.space import CategoricalParam, FloatParam, IntParam, Param

from .convergence import observations, phase_params
from .model import Phase, Study

GRID_1D, GRID_2D = 200, 50


@dataclass(frozen=True)
class Surface:
    phase: str
    names: list[str]                 # the one or two plotted parameters
    axes: list[list[Any]]            # grid values along each plotted parameter
    log_scale: list[bool]            # whether each plotted parameter is searched on a log scale
    mean: np.ndarray                 # posterior mean, shape = lengths of axes
    std: np.ndarray                  # posterior standard deviation
    ei: np.ndarray                   # expected improvement (normalised units)
    observed: list[tuple[list[Any], float]]  # (plotted parameter values, objective value)
    next_point: list[Any]            # where EI is largest on the grid


def surface(study: Study, phase: Phase) -> tuple[Surface | None, str]:
    """``(surface, "")``, or ``(None, why there is none)``."""
    params = phase_params(phase)
    if not params:
        return None, "the phase has not started"
    varying = [p for p in params if varies(p)]
    if not 1 <= len(varying) <= 2:
        return None, (f"the phase searches {len(varying)} parameters; the surrogate is drawn for one or two, "
                      "as in the thesis")
    trials = study.phase_trials(phase.index)
    obs = observations(study, trials, [p.name for p in params])
    if len(obs) < 2:
        return None, f"{len(obs)} observation(s) so far; the GP needs two"
    fixed = {p.name: p.values[0] for p in params if not varies(p)}
    axes = [_axis(p, GRID_1D if len(varying) == 1 else GRID_2D) for p in varying]
    mesh = np.meshgrid(*[np.arange(len(a)) for a in axes], indexing="ij")
    points = [{**fixed, **{p.name: axes[d][int(idx[d])] for d, p in enumerate(varying)}}
              for idx in zip(*(m.ravel() for m in mesh))]
    spec_seed = int(study.spec.get("seed", 0))
    algorithm = (study.spec.get("budget") or {}).get("algorithm", "gp")
    proposer = make_proposer(params, seed=derive_seed(spec_seed, study.id, phase.index), initial_points=0,
                             random_only=False, algorithm="gpyopt" if algorithm == "gpyopt" else "gp")
    mean, std, ei = proposer.surface(obs, points)
    sign = 1.0 if study.maximize else -1.0
    shape = tuple(len(a) for a in axes)
    mean, std, ei = (sign * mean).reshape(shape), std.reshape(shape), ei.reshape(shape)
    best = np.unravel_index(int(np.argmax(ei)), shape)
    observed = [([point[p.name] for p in varying], sign * v) for point, v in obs]
    return Surface(phase.name, [p.name for p in varying], axes,
                   [isinstance(p, FloatParam) and p.scale == "log" for p in varying], mean, std, ei, observed,
                   [axes[d][int(best[d])] for d in range(len(varying))]), ""


def varies(p: Param) -> bool:
    if isinstance(p, CategoricalParam):
        return len(p.values) > 1
    return p.high > p.low


def _axis(p: Param, n: int) -> list[Any]:
    if isinstance(p, CategoricalParam):
        return list(p.values)
    if isinstance(p, IntParam) and p.high - p.low + 1 <= n:
        return list(range(p.low, p.high + 1))
    values = [p.from_unit(u) for u in np.linspace(0.0, 1.0, n)]
    return sorted(set(values)) if isinstance(p, IntParam) else values
