"""The peers, driven as libraries (runs in bench/.venv-peers, never in Saga's environment).

- ``optuna-tpe``: ``optuna.samplers.TPESampler(seed=...)`` with Optuna's defaults; ``optuna-gp``:
  ``GPSampler(seed=...)``; both through ``study.ask``/``study.tell`` (running trials are what
  Optuna sees as RUNNING, as with its RDB storage and several workers).
- ``kt-bo`` / ``kt-random``: Keras Tuner's ``BayesianOptimizationOracle`` / ``RandomSearchOracle``
  with their defaults, as a tuner drives them: ``create_trial(tuner_id)``, ``update_trial``,
  ``end_trial``; no model is trained.
- ``random``: independent uniform draws (log-uniform where the scale is log), numpy only.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import warnings
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")
warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np  # noqa: E402

import protocol  # noqa: E402


def _optuna(task: protocol.Task, tuner: str, seed: int):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists = {}
    for name, d in task.space.items():
        if d["type"] == "float":
            dists[name] = optuna.distributions.FloatDistribution(d["low"], d["high"], log=d.get("scale") == "log")
        elif d["type"] == "int":
            dists[name] = optuna.distributions.IntDistribution(d["low"], d["high"])
        else:
            dists[name] = optuna.distributions.CategoricalDistribution(d["values"])
    sampler = {"optuna-tpe": lambda: optuna.samplers.TPESampler(seed=seed),
               "optuna-gp": lambda: optuna.samplers.GPSampler(seed=seed)}[tuner]()
    study = optuna.create_study(direction="minimize", sampler=sampler)

    def ask():
        trial = study.ask(dists)
        return trial, dict(trial.params)

    def tell(trial, loss):
        study.tell(trial, loss)
    return ask, tell


def _keras_tuner(task: protocol.Task, tuner: str, seed: int, evaluations: int):
    logging.getLogger("keras_tuner").setLevel(logging.ERROR)
    import keras_tuner as kt
    hp = kt.HyperParameters()
    for name, d in task.space.items():
        if d["type"] == "float":
            hp.Float(name, d["low"], d["high"], sampling="log" if d.get("scale") == "log" else "linear")
        elif d["type"] == "int":
            hp.Int(name, d["low"], d["high"])
        else:
            hp.Choice(name, d["values"])
    cls = kt.oracles.BayesianOptimizationOracle if tuner == "kt-bo" else kt.oracles.RandomSearchOracle
    oracle = cls(objective=kt.Objective("loss", "min"), max_trials=evaluations * 2, seed=seed,
                 hyperparameters=hp)
    oracle._set_project_dir(tempfile.mkdtemp(prefix="kt-"), "bench")
    counter = iter(range(10**9))

    def ask():
        trial = oracle.create_trial(f"worker-{next(counter)}")
        return trial, dict(trial.hyperparameters.values)

    def tell(trial, loss):
        oracle.update_trial(trial.trial_id, {"loss": loss})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return ask, tell


def _random(task: protocol.Task, seed: int):
    rng = np.random.default_rng(seed)

    def ask():
        p: dict[str, Any] = {}
        for name, d in task.space.items():
            if d["type"] == "float" and d.get("scale") == "log":
                p[name] = float(math.exp(rng.uniform(math.log(d["low"]), math.log(d["high"]))))
            elif d["type"] == "float":
                p[name] = float(rng.uniform(d["low"], d["high"]))
            elif d["type"] == "int":
                p[name] = int(rng.integers(d["low"], d["high"] + 1))
            else:
                p[name] = d["values"][int(rng.integers(len(d["values"])))]
        return None, p
    return ask, lambda handle, loss: None


def run(task: protocol.Task, tuner: str, seed: int, q: int, evaluations: int) -> dict[str, Any]:
    if tuner.startswith("optuna-"):
        ask, tell = _optuna(task, tuner, seed)
    elif tuner.startswith("kt-"):
        ask, tell = _keras_tuner(task, tuner, seed, evaluations)
    elif tuner == "random":
        ask, tell = _random(task, seed)
    else:
        raise SystemExit(f"unknown tuner {tuner!r}")
    return protocol.drive(task, ask, tell, evaluations, q)


if __name__ == "__main__":
    protocol.main(run)
