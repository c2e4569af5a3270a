"""Runs the peer benchmark, resumably: every (tuner, task, trials in flight, seed) not yet in the results
file, or stored with fewer evaluations than its mode asks for.

    .venv/bin/python bench/peers/run.py [--seeds 20] [--tuners a,b] [--tasks a,b] [--modes 1:50,4:32,16:32]
        [--results bench/results/peers.jsonl] [--seed-major]

Saga's tuners run in Saga's virtualenv (``saga_driver.py``), the peers in ``bench/.venv-peers``
(``peer_driver.py``; ``make bench-peers`` builds it from bench/peers/requirements.txt). One process per
(tuner, task, mode) runs its missing seeds and appends one JSON line per seed, so an interrupted run
loses at most the seed in progress and the next call carries on. BLAS and OpenMP are pinned to one
thread, so tuners are compared at equal CPU. ``--seed-major`` runs seed 0 of every job first, then
seed 1, ... (a partial run of slow tuners then covers every task).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SAGA = ("saga-gp", "saga-gpyopt", "saga-random")
PEERS = ("optuna-tpe", "optuna-gp", "kt-bo", "kt-random", "random")
SKLEARN_TASKS = ("svr_diabetes", "sgd_digits")   # slow to evaluate: no extra jobs
TASKS = ("branin", "hartmann6", "rosenbrock4", "rastrigin6", "ackley8", "transfer", *SKLEARN_TASKS)
PEER_PYTHON = ROOT / "bench" / ".venv-peers" / "bin" / "python"


# Saga's default also runs on to 64 evaluations with 16 in flight: how long 16 workers take to match
# the sequential best at 20 (every proposal of a 16:32 run sees only the first 16, blind, points).
EXTRA_JOBS = (("saga-gp", 16, 64),)


def done(results: Path) -> dict[tuple[str, str, int, int], int]:
    """(tuner, task, in flight, seed) -> the most evaluations a stored run of it has."""
    if not results.exists():
        return {}
    out: dict[tuple[str, str, int, int], int] = {}
    for line in results.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue   # a line cut by an interrupted run
        key = (r["tuner"], r["task"], r["in_flight"], r["seed"])
        out[key] = max(out.get(key, 0), len(r["losses"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--tuners", default=",".join(SAGA + PEERS))
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--modes", default="1:50,4:32,16:32", help="in_flight:evaluations, comma-separated")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results" / "peers.jsonl"))
    ap.add_argument("--seed-major", action="store_true")
    args = ap.parse_args()
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    modes = [tuple(map(int, m.split(":"))) for m in args.modes.split(",")]
    tuners, tasks = args.tuners.split(","), args.tasks.split(",")
    jobs = [(tuner, task, q, n) for q, n in modes for task in tasks for tuner in tuners]
    jobs += [(tuner, task, q, n) for tuner, q, n in EXTRA_JOBS if tuner in tuners and (q, n) not in modes
             for task in tasks if task not in SKLEARN_TASKS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore", "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "3"}
    batches = [[s] for s in range(args.seeds)] if args.seed_major else [list(range(args.seeds))]
    for seeds in batches:
        for tuner, task, q, n in jobs:
            have = done(results)
            missing = [s for s in seeds if have.get((tuner, task, q, s), 0) < n]
            if not missing:
                continue
            driver, python = (("saga_driver.py", sys.executable) if tuner in SAGA else
                              ("peer_driver.py", str(PEER_PYTHON)))
            cmd = [python, str(HERE / driver), tuner, task, str(q), str(n), str(results), *map(str, missing)]
            proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(tuner)]
            print("\n".join(lines), flush=True)
            if proc.returncode:
                print(f"{tuner} {task} q={q}: exit {proc.returncode}\n{proc.stderr[-2000:]}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
