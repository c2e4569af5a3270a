"""Proposal latency of the optimizer service over gRPC (against naive in-process GPyOpt).

A ``joint`` study (4 mixed parameters: backbone 9 categories, optimizer 7 categories, learning rate
log-scaled float, delimiting depth float) is filled with observations of a cheap objective through a
real localhost gRPC server. Around 10, 50, 100 and 200 observations, LeaseTrial (which runs one
proposal) is timed, and on the same observations naive in-process GPyOpt
(``BayesianOptimization(f=None, domain, X, Y).suggest_next_locations()``: new model, five restarts,
its own acquisition optimizer) is timed too, in the same run.

    .venv/bin/python bench/proposal_latency.py [--samples 10] [--points 10,50,100,200]
        [--algorithm gp|gpyopt] [--no-naive]

``--algorithm`` is the study's ``budget.algorithm`` (default: Saga's ``gp``); ``--no-naive`` skips the
naive GPyOpt timings (several seconds each at 500 observations).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
warnings.filterwarnings("ignore")

from optimizer_svc.client import OptimizerClient, parameters  # noqa: E402
from optimizer_svc.core import OptimizerCore  # noqa: E402
from optimizer_svc.server import make_server  # noqa: E402
from optimizer_svc.spec import SEED_BACKBONES, SEED_OPTIMIZERS  # noqa: E402
from tests.optimizer.cheap import objective  # noqa: E402


def naive_gpyopt(points: list[dict], values: list[float]) -> float:
    import GPyOpt
    domain = [{"name": "backbone", "type": "categorical", "domain": tuple(range(len(SEED_BACKBONES)))},
              {"name": "optimizer", "type": "categorical", "domain": tuple(range(len(SEED_OPTIMIZERS)))},
              {"name": "lr", "type": "continuous", "domain": (-4.0, 0.0)},
              {"name": "depth", "type": "continuous", "domain": (0.0, 1.0)}]
    X = np.array([[SEED_BACKBONES.index(p["backbone"]), SEED_OPTIMIZERS.index(p["optimizer"]),
                   math.log10(p["learning_rate"]), p["delimiting_layer"]] for p in points])
    Y = -np.array(values).reshape(-1, 1)
    t0 = time.perf_counter()
    GPyOpt.methods.BayesianOptimization(f=None, domain=domain, X=X, Y=Y).suggest_next_locations()
    return time.perf_counter() - t0


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10, help="proposals timed at each point")
    ap.add_argument("--points", default="10,50,100,200", help="observation counts to measure at")
    ap.add_argument("--algorithm", default="gp", choices=("gp", "gpyopt"))
    ap.add_argument("--no-naive", dest="naive", action="store_false")
    args = ap.parse_args()
    points = [int(x) for x in args.points.split(",")]
    tmp = tempfile.mkdtemp()
    core = OptimizerCore(os.path.join(tmp, "bench.db"))
    server, port = make_server(core, "127.0.0.1:0")
    server.start()
    client = OptimizerClient(f"127.0.0.1:{port}")
    spec = {"name": "bench", "dataset": {"uri": "/bench"}, "strategy": "joint",
            "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}},
            "budget": {"trials_per_phase": max(points) + args.samples + 1, "initial_points": 5,
                       "parallel_trials": 1, "algorithm": args.algorithm},
            "stopping": {"nonconvergence": {"enabled": False}, "early_stopping": {"enabled": False}}}
    client.create_study(spec)
    seen_p: list[dict] = []
    seen_v: list[float] = []
    rows = []
    for target in points:
        while len(seen_v) < target:  # fill up to the next measuring point
            trial, lease = client.lease_trial("bench", wait=5)
            seen_p.append(parameters(trial))
            seen_v.append(objective(seen_p[-1]))
            client.complete_trial(trial.id, lease.id, "SUCCEEDED", metrics={"val_accuracy": seen_v[-1]})
        svc, naive, cpu = [], [], []
        for _ in range(args.samples):
            naive.append(naive_gpyopt(seen_p, seen_v) if args.naive else math.nan)
            t0, c0 = time.perf_counter(), time.process_time()
            trial, lease = client.lease_trial("bench", wait=5)
            svc.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)   # client + server threads: one process
            seen_p.append(parameters(trial))
            seen_v.append(objective(seen_p[-1]))
            client.complete_trial(trial.id, lease.id, "SUCCEEDED", metrics={"val_accuracy": seen_v[-1]})
        row = (target, statistics.median(svc), pct(svc, 0.95), statistics.median(naive), pct(naive, 0.95))
        print(f"{target:>4} observations: service max {max(svc):.3f}s; CPU s of the call p50 "
              f"{statistics.median(cpu):.3f} max {max(cpu):.3f}", flush=True)
        rows.append(row)
        print(f"{target:>4} observations: service p50 {row[1]:.3f}s p95 {row[2]:.3f}s | "
              f"naive GPyOpt p50 {row[3]:.3f}s p95 {row[4]:.3f}s | ratio p50 {row[1] / row[3]:.2f}", flush=True)
    print("\n| observations | service p50 (s) | service p95 (s) | naive GPyOpt p50 (s) | naive p95 (s) | p50 ratio |")
    print("|---|---|---|---|---|---|")
    for n, a, b, c, d in rows:
        print(f"| {n} | {a:.3f} | {b:.3f} | {c:.3f} | {d:.3f} | {a / c:.2f} |")
    client.close()
    server.stop(None)
    core.close()


if __name__ == "__main__":
    main()
