"""Saga's default proposer (``algorithm: gp``): Sobol initial design, then the GP of ``gp`` with LogEI.

- Initial design: point ``number`` of a scrambled Sobol sequence seeded by the phase's seed, for the
  first ``initial_points`` trials and for as long as fewer than two observations exist (so 16 trials
  started at once spread over the space instead of clumping as random draws do). Each coordinate of
  a scrambled Sobol point is uniform, and categoricals decode by equal buckets: every choice 1/k.
- Pending trials: Kriging believer (each pending point is added as if it had returned the model's
  own mean), so their neighbourhood loses its uncertainty and EI moves elsewhere; no constant lie.
- A candidate too close to a tried or running point is skipped for the next best candidate of the
  same search; a random point only if every candidate is taken (counted in ``random_fallbacks``).
- Hyperparameters are refitted (warm-started) for every proposal up to 100 observations, and then
  whenever the observations have grown by 5%: a proposal at 500 observations mostly costs one
  Cholesky factorisation and the acquisition search.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy.stats import qmc

from .acquisition import AcquisitionSearch, log_ei
from .gp import Features, GaussianProcess, warp
from .proposer import MIN_DISTANCE, PENDING_DISTANCE, RandomProposer, derive_seed, repeats
from .space import Param, decode, encode

FULL_FIT_EVERY = 10        # also try the prior's mode as a start every this many fits
REFIT_ALWAYS_BELOW = 100   # observations; above, refit when they have grown by REFIT_GROWTH
REFIT_GROWTH = 1.05
# The GP's prior mean, in standard deviations below the mean of the (warped) values: where there is
# no data the model expects a worse-than-average trial, so unexplored corners are not promising by
# default (on Hartmann-6 this halved the proposals on a bound; see docs/BENCHMARKS.md).
PESSIMISM = 1.0


class GPProposer:
    def __init__(self, params: list[Param], seed: int, initial_points: int):
        self.params, self.seed, self.initial_points = params, seed, initial_points
        self.random = RandomProposer(params, seed)
        self.features = Features(params)
        self.search = AcquisitionSearch(self.features)
        self.gp: GaussianProcess | None = None
        self._fits = 0
        self._fitted_n = 0
        self.last_fit_seconds = 0.0
        self.random_fallbacks = 0

    def propose(self, number, observations, pending):
        self.last_fit_seconds = 0.0
        if number < self.initial_points or len(observations) < 2:
            return self._design(number, observations, pending)
        U = np.array([encode(self.params, p) for p, _ in observations])
        y = warp(np.array([v for _, v in observations], dtype=float)) + PESSIMISM
        Z = self.features(U)
        t0 = time.perf_counter()
        self._fit(Z, y)
        self.last_fit_seconds = time.perf_counter() - t0
        P = np.array([encode(self.params, p) for p in pending]).reshape(-1, len(self.params))
        model = self.gp.believe(self.features(P)) if pending else self.gp
        top = U[np.argsort(-y)[:5]]
        rng = np.random.default_rng(derive_seed(self.seed, number, "acquisition"))
        candidates, _ = self.search.ranked(model, float(y.max()), top, rng)
        free = np.ones(len(candidates), dtype=bool)
        for taken, distance in ((U, MIN_DISTANCE), (P, PENDING_DISTANCE)):
            for row in taken:   # max-norm distance to every tried and running point, as ``repeats`` measures it
                free &= np.max(np.abs(candidates - row), axis=1) >= distance
        for u in candidates[free][:3]:
            point = decode(self.params, u)
            if not repeats(self.params, point, observations, pending):
                return point
        self.random_fallbacks += 1
        return self.random.propose(number, observations, pending)

    def _design(self, number: int, observations, pending) -> dict[str, Any]:
        d = max(len(self.params), 1)
        n = 1 << max(number, 1).bit_length()   # a power of two >= number + 1: Sobol's balanced prefix
        sobol = qmc.Sobol(d, scramble=True, seed=derive_seed(self.seed, "design"))
        point = decode(self.params, sobol.random(n)[number])
        if repeats(self.params, point, observations, pending):   # tiny discrete spaces
            return self.random.propose(number, observations, pending)
        return point

    def _fit(self, Z: np.ndarray, y: np.ndarray) -> None:
        n = len(y)
        if self.gp is None:
            self.gp = GaussianProcess(self.features.groups, self.features.n_groups)
        elif n >= REFIT_ALWAYS_BELOW and n < REFIT_GROWTH * self._fitted_n:
            self.gp.condition(Z, y)
            return
        starts = [self.gp.theta]
        if self._fits % FULL_FIT_EVERY == 0:
            starts.append(self.gp.prior_mean)
        self.gp.fit(Z, y, starts=starts)
        self._fits += 1
        self._fitted_n = n

    def surface(self, observations: list[tuple[dict[str, Any], float]], points: list[dict[str, Any]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The surrogate this proposer fits to ``observations`` (values maximized), at ``points``:
        posterior mean and standard deviation of the value, and log expected improvement."""
        values = np.array([v for _, v in observations], dtype=float)
        mean_v, sd_v = float(values.mean()), float(values.std()) or 1.0
        y = (values - mean_v) / sd_v   # no warp here: the surface is drawn in the value's own units
        gp = GaussianProcess(self.features.groups, self.features.n_groups)
        gp.fit(self.features(np.array([encode(self.params, p) for p, _ in observations])), y)
        mean, var = gp.predict(self.features(np.array([encode(self.params, p) for p in points])))
        return mean * sd_v + mean_v, np.sqrt(var) * sd_v, np.exp(log_ei(mean, var, float(y.max())))
