"""Parallel efficiency of the optimizer service: simulated trials of fixed duration, 1, 4 and 16 workers.

A real localhost gRPC server runs a ``joint`` study (backbone, optimizer, log learning rate,
delimiting depth; Saga's default engine) of ``--trials`` trials; each worker thread leases a trial,
"trains" for ``--duration`` seconds (a sleep) and completes it with the cheap objective of the tests.
Wall time runs from the study's creation to its end. Speedup = T(1 worker) / T(k workers); its ideal
is k (``--trials`` is a multiple of 16), so efficiency = speedup / k. The best value at the equal
trial count is printed beside it (one seed: bench/peers gives the statistics).

    .venv/bin/python bench/parallel_efficiency.py [--trials 32] [--duration 4] [--workers 1,4,16]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
warnings.filterwarnings("ignore")

from optimizer_svc.client import OptimizerClient, parameters  # noqa: E402
from optimizer_svc.core import OptimizerCore  # noqa: E402
from optimizer_svc.proposals import ProposalProcesses  # noqa: E402
from optimizer_svc.server import make_server  # noqa: E402
from saga.v1 import optimizer_pb2 as pb  # noqa: E402
from tests.optimizer.cheap import objective  # noqa: E402


def worker(target: str, study_id: str, name: str, duration: float) -> None:
    client = OptimizerClient(target)
    try:
        while client.get_study(study_id).state == pb.STUDY_ACTIVE:
            got = client.lease_trial(name, study_id=study_id, wait=1.0)
            if got is None:
                continue
            trial, lease = got
            time.sleep(duration)
            client.complete_trial(trial.id, lease.id, "SUCCEEDED",
                                  metrics={"val_accuracy": objective(parameters(trial))})
    finally:
        client.close()


def run(target: str, client: OptimizerClient, workers: int, trials: int, duration: float, seed: int) -> tuple[float, float]:
    spec = {"name": f"parallel-{workers}", "dataset": {"uri": "/bench"}, "strategy": "joint", "seed": seed,
            "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}},
            "budget": {"trials_per_phase": trials, "initial_points": 5, "parallel_trials": workers},
            "stopping": {"nonconvergence": {"enabled": False}, "early_stopping": {"enabled": False}}}
    t0 = time.perf_counter()
    study = client.create_study(spec)
    threads = [threading.Thread(target=worker, args=(target, study.id, f"w{i}", duration)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return wall, max(t.value for t in client.list_trials(study.id))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--workers", default="1,4,16")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    # proposals as `saga optimizer` makes them: in processes of their own (--proposal-processes 2)
    core = OptimizerCore(os.path.join(tempfile.mkdtemp(), "bench.db"), proposals=ProposalProcesses(2))
    server, port = make_server(core, "127.0.0.1:0")
    server.start()
    target = f"127.0.0.1:{port}"
    client = OptimizerClient(target)
    rows = []
    for k in map(int, args.workers.split(",")):
        wall, best = run(target, client, k, args.trials, args.duration, args.seed)
        rows.append((k, wall, best))
        print(f"{k:>3} workers: {wall:.1f}s, best {best:.4f}", flush=True)
    t1 = rows[0][1]
    print("\n| workers | wall (s) | ideal (s) | speedup | efficiency (speedup / workers) | ideal / wall | best value |")
    print("|---|---|---|---|---|---|---|")
    for k, wall, best in rows:
        ideal = args.trials * args.duration / k
        print(f"| {k} | {wall:.1f} | {ideal:.1f} | {t1 / wall:.2f} | {t1 / wall / k:.3f} | {ideal / wall:.3f} | {best:.4f} |")
    client.close()
    server.stop(None)
    core.close()


if __name__ == "__main__":
    main()
