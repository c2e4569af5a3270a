"""A real optimizer on localhost gRPC with a finished study (whose trials stored a metrics.json) and a
running one, and the real ``saga dashboard`` command serving them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from optimizer_svc.client import OptimizerClient
from optimizer_svc.core import OptimizerCore
from optimizer_svc.server import LeaseReaper, make_server
from saga.v1 import optimizer_pb2 as pb
from tests.report.conftest import report_spec, run_workers
from tests.report.workers import PlateauWorker

CLASSES = ["polyps", "ulcerative-colitis", "normal-cecum"]
TRIALS_PER_PHASE = 4  # three phases (separate_steps): head, finetune, layer
ARTIFACTS = Path(os.environ.get("SAGA_TEST_ARTIFACTS", ".saga/test-artifacts")) / "dashboard"


def evaluation(matrix: list[list[int]]) -> dict:
    """The trainer's evaluation section (trainer_svc.evaluation) of a confusion matrix."""
    total = sum(map(sum, matrix))
    per_class = {}
    for i, name in enumerate(CLASSES):
        tp = matrix[i][i]
        fp = sum(row[i] for row in matrix) - tp
        fn = sum(matrix[i]) - tp
        tn = total - tp - fp - fn
        prec, rec = tp / (tp + fp), tp / (tp + fn)
        per_class[name] = {"tp": tp, "tn": tn, "fp": fp, "fn": fn, "precision": prec, "recall": rec,
                           "specificity": tn / (tn + fp), "accuracy": (tp + tn) / total, "mcc": 0.8,
                           "f1": 2 * prec * rec / (prec + rec), "support": tp + fn}
    macro = {m: sum(c[m] for c in per_class.values()) / len(CLASSES)
             for m in ("precision", "recall", "specificity", "mcc", "f1")}
    return {"classes": CLASSES, "samples": total, "accuracy": sum(matrix[i][i] for i in range(3)) / total,
            "mcc": 0.8, "macro": macro, "per_class": per_class, "confusion_matrix": matrix}


class EvaluatedWorker(PlateauWorker):
    """Every trial it completes carries a metrics.json artifact in a local store."""

    store: Path

    def __init__(self, *args, store: Path, **kw):
        super().__init__(*args, **kw)
        self.store = store
        original = self.client.complete_trial

        def complete(trial_id, lease_id, outcome, **kw):
            if outcome == "SUCCEEDED":
                path = self.store / trial_id / "metrics.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"evaluation": {
                    "validation": evaluation([[18, 1, 1], [2, 16, 2], [0, 1, 19]]),
                    "test": evaluation([[17, 2, 1], [1, 18, 1], [1, 0, 19]])}}))
                kw["artifacts"] = {**kw.get("artifacts", {}), "metrics": str(path)}
            return original(trial_id, lease_id, outcome, **kw)
        self.client.complete_trial = complete


@dataclass
class Dashboard:
    url: str
    process: subprocess.Popen
    optimizer: str
    client: OptimizerClient
    finished: str          # a completed study
    store: Path


def start_dashboard(target: str, *extra: str) -> tuple[str, subprocess.Popen]:
    p = subprocess.Popen([sys.executable, "-m", "saga.cli.main", "dashboard", "--optimizer", target, "--port", "0",
                          *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = p.stdout.readline()
    assert "dashboard listening on" in line, line + p.stdout.read()
    return line.split()[3], p


def stop(p: subprocess.Popen) -> int:
    p.terminate()
    try:
        return p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard")
    core = OptimizerCore(str(root / "opt.db"))
    server, port = make_server(core, "127.0.0.1:0")
    reaper = LeaseReaper(core, interval=0.2)
    reaper.start()
    server.start()
    target = f"127.0.0.1:{port}"
    client = OptimizerClient(target)
    spec = report_spec(name="finished kvasir study")
    spec["budget"]["trials_per_phase"] = TRIALS_PER_PHASE
    study = client.create_study(spec)
    run_workers(target, study.id, [EvaluatedWorker(target, study.id, f"worker-{i}", store=root / "store")
                                   for i in range(2)])
    assert client.get_study(study.id).state == pb.STUDY_COMPLETED
    url, process = start_dashboard(target, "--enable-actions", "--store", str(root / "store"))
    yield Dashboard(url, process, target, client, study.id, root / "store")
    rc = stop(process)
    client.close()
    reaper.stopped.set()
    server.stop(grace=None).wait()
    core.close()
    assert rc == 0, f"saga dashboard exited {rc} on SIGTERM"


def wait_for(check, timeout: float = 60.0, what: str = "condition"):
    """Polls ``check`` until it returns something truthy; the page and the services are asynchronous."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)
