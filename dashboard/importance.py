"""Parameter importance of one phase: the mean decrease in impurity of a scikit-learn random forest
fitted to the phase's observations (what Optuna's ``MeanDecreaseImpurityImportanceEvaluator`` and
optuna-dashboard show), normalised to sum to 1.

Parameters are encoded as the optimizer encodes them (``optimizer_svc.space``: the unit cube, log
scale for log-scaled floats, a categorical's index spread over [0, 1]); a forest splits on an index as
well as on a one-hot column and keeps one importance per parameter. Observations are the proposer's
own (``report.convergence.observations``: infeasible trials at the worst value seen).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from optimizer_svc.space import encode
from report.convergence import observations, phase_params
from report.model import Phase, Study
from report.surrogate import varies

MIN_OBSERVATIONS = 3  # fewer points than this say nothing about which parameter matters
TREES = 128


@dataclass(frozen=True)
class Importance:
    phase: str
    parameters: list[str]       # most important first
    importances: list[float]    # same order, sum 1
    observations: int
    method: str = "random-forest mean decrease in impurity (scikit-learn)"


def importance(study: Study, phase: Phase) -> tuple[Importance | None, str]:
    """``(importance, "")``, or ``(None, why there is none)``."""
    params = [p for p in phase_params(phase) if varies(p)]
    if not params:
        return None, "the phase has not started" if not phase.space else "the phase searches no varying parameter"
    obs = observations(study, study.phase_trials(phase.index), [p.name for p in params])
    if len(obs) < MIN_OBSERVATIONS:
        return None, f"{len(obs)} observation(s) so far; importance needs {MIN_OBSERVATIONS}"
    if len(params) == 1:
        return Importance(phase.name, [params[0].name], [1.0], len(obs)), ""
    x = np.array([encode(params, point) for point, _ in obs])
    y = np.array([v for _, v in obs])
    if np.ptp(y) == 0:
        return None, "every observation has the same value"
    forest = RandomForestRegressor(n_estimators=TREES, random_state=0).fit(x, y)
    order = np.argsort(-forest.feature_importances_, kind="stable")
    return Importance(phase.name, [params[i].name for i in order],
                      [float(forest.feature_importances_[i]) for i in order], len(obs)), ""

