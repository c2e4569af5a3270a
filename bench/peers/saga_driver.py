"""Saga's tuners, driven as the optimizer's core drives them (runs in Saga's own virtualenv).

The core builds one proposer per phase with ``make_proposer(params, seed=derive_seed(study seed,
phase), initial_points=..., random_only=..., algorithm=...)`` and calls ``propose(number in phase,
observations as (parameters, value to maximise), pending parameters)``: exactly what this does, with
the spec's defaults (5 initial points). Tuners: ``saga-gp`` (the default), ``saga-gpyopt`` (the
thesis's engine), ``saga-random`` (the ``random`` strategy).
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
warnings.filterwarnings("ignore")

from optimizer_svc.proposer import derive_seed, make_proposer  # noqa: E402
from optimizer_svc.space import parse_param  # noqa: E402
from optimizer_svc.spec import Budget  # noqa: E402

import protocol  # noqa: E402


def run(task: protocol.Task, tuner: str, seed: int, q: int, evaluations: int) -> dict[str, Any]:
    algorithm = tuner.removeprefix("saga-")
    params = [parse_param(name, d, name) for name, d in task.space.items()]
    proposer = make_proposer(params, seed=derive_seed(seed, 0), initial_points=Budget().initial_points,
                             random_only=algorithm == "random", algorithm=algorithm)
    observations: list[tuple[dict[str, Any], float]] = []
    running: dict[int, dict[str, Any]] = {}

    def ask() -> tuple[int, dict[str, Any]]:
        number = len(observations) + len(running)
        point = proposer.propose(number, observations, list(running.values()))
        running[number] = point
        return number, point

    def tell(number: int, loss: float) -> None:
        observations.append((running.pop(number), -loss))   # the core maximises; losses are minimised

    row = protocol.drive(task, ask, tell, evaluations, q)
    row["random_fallbacks"] = getattr(proposer, "random_fallbacks", 0)
    return row


if __name__ == "__main__":
    protocol.main(run)
