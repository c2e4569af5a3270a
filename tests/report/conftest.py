"""A real optimizer on localhost gRPC, one finished and one running study on it, and their reports
written by the real ``saga report`` command."""
from __future__ import annotations

import json
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
from tests.optimizer.conftest import small_spec
from tests.report.workers import PlateauWorker


@dataclass
class Reported:
    study_id: str
    out: Path
    cli_output: str

    def json(self, name: str):
        return json.loads((self.out / "tables" / f"{name}.json").read_text())


def saga(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "saga.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def report_spec(**over) -> dict:
    return small_spec("separate_steps", dataset={"uri": "s3://saga/datasets/kvasir-v2"},
                      training={"head_epochs": 6, "finetune_epochs": 6},
                      budget={"trials_per_phase": 5, "initial_points": 2, "parallel_trials": 2}, **over)


@pytest.fixture(scope="module")
def optimizer(tmp_path_factory):
    core = OptimizerCore(str(tmp_path_factory.mktemp("opt") / "opt.db"))
    server, port = make_server(core, "127.0.0.1:0")
    reaper = LeaseReaper(core, interval=0.2)
    reaper.start()
    server.start()
    target = f"127.0.0.1:{port}"
    client = OptimizerClient(target)
    yield target, client
    client.close()
    reaper.stopped.set()
    server.stop(grace=None).wait()
    core.close()


def run_workers(target: str, study_id: str, workers: list[PlateauWorker], timeout: float = 120) -> None:
    for w in workers:
        w.start()
    deadline = time.monotonic() + timeout
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
        assert not w.is_alive(), f"worker {w.name} still running after {timeout}s"
        assert w.error is None, repr(w.error)


@pytest.fixture(scope="module")
def finished(optimizer, tmp_path_factory) -> Reported:
    target, client = optimizer
    study = client.create_study(report_spec(name="finished"))
    run_workers(target, study.id, [PlateauWorker(target, study.id, f"worker-{i}") for i in range(2)])
    assert client.get_study(study.id).state == pb.STUDY_COMPLETED
    out = tmp_path_factory.mktemp("finished") / "report"
    done = saga("report", study.id, "--out", str(out), "--optimizer", target)
    assert done.returncode == 0, done.stderr
    return Reported(study.id, out, done.stdout)


@pytest.fixture(scope="module")
def running(optimizer, tmp_path_factory) -> Reported:
    """Three trials finished, the fourth leased and reporting epochs, the rest not started."""
    target, client = optimizer
    study = client.create_study(report_spec(name="running"))
    run_workers(target, study.id, [PlateauWorker(target, study.id, "worker-0", max_trials=3)])
    assert client.get_study(study.id).trial_counts["TRIAL_RUNNING"] == 1
    out = tmp_path_factory.mktemp("running") / "report"
    done = saga("report", study.id, "--out", str(out), "--optimizer", target)
    assert done.returncode == 0, done.stderr
    return Reported(study.id, out, done.stdout)
