"""A real `saga optimizer` killed with -9 twice mid-study while both cores are busy.

Four workers (threads, real gRPC, the tests' cheap objective, 1 s of "training" per trial) run a
``joint`` GP study of 16 trials; two CPU burners load both cores; the optimizer is killed with -9
after 4 s (down 3 s) and again 5 s later (down 20 s), and restarted on the same port and database
each time. Printed: how long the study took, its trials by state and attempt, and duplicated
measurements (expected: every trial SUCCEEDED on attempt 1, no duplicates).

    .venv/bin/python bench/kill_under_load.py [--port 50999] [--burners 2]
"""
from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
warnings.filterwarnings("ignore")

from optimizer_svc.client import OptimizerClient  # noqa: E402
from saga.v1 import optimizer_pb2 as pb  # noqa: E402
from tests.optimizer.cheap import CheapWorker  # noqa: E402
from tests.optimizer.conftest import small_spec  # noqa: E402

SAGA = os.path.join(os.path.dirname(sys.executable), "saga")


class SlowWorker(CheapWorker):
    def train(self, trial, lease) -> None:
        time.sleep(1.0)
        super().train(trial, lease)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=50999)
    ap.add_argument("--burners", type=int, default=2)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="saga-kill-")
    db, log = os.path.join(tmp, "opt.db"), open(os.path.join(tmp, "optimizer.log"), "a")
    target = f"127.0.0.1:{args.port}"

    def start() -> subprocess.Popen:
        p = subprocess.Popen([SAGA, "optimizer", "--host", "127.0.0.1", "--port", str(args.port), "--db", db,
                              "--no-dataset-check"], stdout=log, stderr=subprocess.STDOUT)
        time.sleep(4)
        return p

    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
    opt = start()
    try:
        client = OptimizerClient(target, retry_for=None)
        study = client.create_study(small_spec("joint", budget={"trials_per_phase": 16, "initial_points": 4,
                                                                "parallel_trials": 4}))
        workers = [SlowWorker(target, study.id, f"w{i}") for i in range(4)]
        for w in workers:
            w.client = OptimizerClient(target, retry_for=None)  # outlive the outage, as trainers do
            w.start()
        t0 = time.monotonic()
        for after, down in ((4, 3), (5, 20)):
            time.sleep(after)
            opt.send_signal(signal.SIGKILL)
            opt.wait()
            print(f"kill -9 at {time.monotonic() - t0:.1f} s, down {down} s", flush=True)
            time.sleep(down)
            opt = start()
        for w in workers:
            w.join(timeout=900)
        trials = client.list_trials(study.id)
        con = sqlite3.connect(db)
        dups = con.execute("SELECT COUNT(*) FROM (SELECT 1 FROM measurements GROUP BY trial_id, attempt, step, "
                           "epoch HAVING COUNT(*) > 1)").fetchone()[0]
        print(f"study {pb.StudyState.Name(client.get_study(study.id).state)} after {time.monotonic() - t0:.1f} s; "
              f"trials {dict(Counter(pb.TrialState.Name(t.state) for t in trials))}; "
              f"attempts {dict(Counter(t.attempt for t in trials))}; duplicated measurements {dups}; "
              f"worker errors {[repr(w.error) for w in workers if w.error]}")
        client.close()
    finally:
        for b in burners:
            b.kill()
        opt.send_signal(signal.SIGTERM)
        opt.wait()


if __name__ == "__main__":
    main()
