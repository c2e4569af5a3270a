"""Proposals for one phase: an initial design, then a model's choice with pending trials taken into account.

``Proposer`` is the small interface the core uses; ``make_proposer`` picks the engine a study's
``budget.algorithm`` names:

| algorithm | engine |
|---|---|
| ``gp`` (default) | Saga's GP (``gp_proposer``): scrambled Sobol initial design, ARD Matern-5/2 with a Hamming kernel for categoricals and lengthscale priors, LogEI, pending trials as Kriging believers |
| ``gpyopt`` | the thesis's GPyOpt GP + EI (``gpyopt_backend``), random initial design, constant liar |
| ``random`` | uniform random points (also what the ``random`` strategy uses) |

Proposals are deterministic for a given study seed, phase and trial number.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Protocol

import numpy as np

from trial_contract.registry import ALGORITHMS  # the engines a spec may name

from .space import CategoricalParam, Param, encode, encode_many, sample

# Max-norm distances in the unit cube: a proposal closer than this to a tried point is a repeat,
# and parallel (pending) proposals must stay further apart than PENDING_DISTANCE.
MIN_DISTANCE = 1e-3
PENDING_DISTANCE = 0.05


class Proposer(Protocol):
    def propose(self, number: int, observations: list[tuple[dict[str, Any], float]],
                pending: list[dict[str, Any]]) -> dict[str, Any]:
        """The next point; ``number`` is the trial's index within the phase; values are maximized."""


def derive_seed(*parts: Any) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class RandomProposer:
    def __init__(self, params: list[Param], seed: int):
        self.params, self.seed = params, seed
        self.last_fit_seconds = 0.0

    def propose(self, number, observations, pending):
        for retry in range(100):
            point = sample(self.params, np.random.default_rng(derive_seed(self.seed, number, retry)))
            if not repeats(self.params, point, observations, pending):
                return point
        return point  # the space is (almost) exhausted: a repeat is the only choice left


class GPyOptProposer:
    """The thesis's GPyOpt GP + EI after ``initial_points`` random trials, pending trials as constant lies
    (``algorithm: gpyopt``, kept to reproduce the seed)."""

    def __init__(self, params: list[Param], seed: int, initial_points: int):
        from .gpyopt_backend import Dim, GPEISuggester  # only this proposer pays for importing GPyOpt
        self.params, self.seed, self.initial_points = params, seed, initial_points
        self.random = RandomProposer(params, seed)
        dims = [Dim("categorical", size=len(p.values)) if isinstance(p, CategoricalParam) else Dim("continuous")
                for p in params]
        self.gp = GPEISuggester(dims)
        self.last_fit_seconds = 0.0
        self.random_fallbacks = 0

    def _to_gp(self, point: dict[str, Any]) -> list[float]:
        return [float(p.values.index(point[p.name])) if isinstance(p, CategoricalParam) else p.to_unit(point[p.name])
                for p in self.params]

    def _from_gp(self, row: np.ndarray) -> dict[str, Any]:
        return {p.name: p.values[int(round(x))] if isinstance(p, CategoricalParam) else p.from_unit(float(x))
                for p, x in zip(self.params, row)}

    def propose(self, number, observations, pending):
        self.last_fit_seconds = 0.0
        if number < self.initial_points or len(observations) < 2:
            return self.random.propose(number, observations, pending)
        X = np.array([self._to_gp(p) for p, _ in observations])
        Y = -np.array([[v] for _, v in observations])  # GPyOpt minimizes
        P = np.array([self._to_gp(p) for p in pending]) if pending else None
        t0 = time.perf_counter()
        point = self._from_gp(self.gp.suggest(X, Y, P, derive_seed(self.seed, number)))
        self.last_fit_seconds = self.gp.last_fit_seconds or (time.perf_counter() - t0)
        if repeats(self.params, point, observations, pending):
            # EI's optimum sits on a point already tried or running: explore instead of repeating it.
            self.random_fallbacks += 1
            return self.random.propose(number, observations, pending)
        return point

    def surface(self, observations: list[tuple[dict[str, Any], float]], points: list[dict[str, Any]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The surrogate this proposer would fit to ``observations`` (values maximized), at ``points``:
        posterior mean and standard deviation of the value, and expected improvement."""
        X = np.array([self._to_gp(p) for p, _ in observations])
        Y = -np.array([[v] for _, v in observations])
        G = np.array([self._to_gp(p) for p in points])
        mean, std, ei = self.gp.surface(X, Y, G, derive_seed(self.seed, "surface"))
        return -mean, std, ei


def repeats(params: list[Param], point: dict[str, Any], observations: list[tuple[dict[str, Any], float]],
            pending: list[dict[str, Any]]) -> bool:
    """Whether ``point`` (nearly) repeats a tried point or sits next to a running one."""
    if not params:
        return bool(observations or pending)
    u = encode(params, point)
    for others, distance in (([p for p, _ in observations], MIN_DISTANCE), (pending, PENDING_DISTANCE)):
        if others and np.min(np.max(np.abs(encode_many(params, others) - u), axis=1)) < distance:
            return True
    return False


def make_proposer(params: list[Param], *, seed: int, initial_points: int, random_only: bool,
                  algorithm: str = "gp") -> Proposer:
    if random_only or algorithm == "random":
        return RandomProposer(params, seed)
    if algorithm == "gpyopt":
        return GPyOptProposer(params, seed, initial_points)
    if algorithm == "gp":
        from .gp_proposer import GPProposer
        return GPProposer(params, seed, initial_points)
    raise ValueError(f"unknown algorithm {algorithm!r} (known: {list(ALGORITHMS)})")


def propose_safely(proposer: Proposer, number: int, observations: list[tuple[dict[str, Any], float]],
                   pending: list[dict[str, Any]]) -> tuple[dict[str, Any], BaseException | None]:
    """``proposer``'s point, or, when it fails (a GP fit that does not converge, a numerical error),
    a random one: a study must never stop on its model. Returns (point, the error or None)."""
    try:
        return proposer.propose(number, observations, pending), None
    except Exception as exc:  # noqa: BLE001 - any failure of the model falls back the same way
        fallback = getattr(proposer, "random", proposer)
        if fallback is proposer:
            raise
        return fallback.propose(number, observations, pending), exc
