from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from datastore.local_store import LocalStore
from datastore.manifest import Manifest, save_manifest
from optimizer_svc.core import OptimizerCore
from optimizer_svc.server import LeaseReaper, make_server


def empty_dataset() -> str:
    """A local dataset with a manifest and no images: enough for an optimizer that checks the
    dataset at creation; the cheap workers of these tests never read images."""
    root = Path(tempfile.gettempdir()) / f"saga-tests-{os.getuid()}" / "empty-dataset"
    save_manifest(LocalStore(root), Manifest(classes=["a", "b"], items=[], seed=0,
                                             split_fractions={"train": 0.7, "validation": 0.15, "test": 0.15}))
    return str(root)


def small_spec(strategy: str = "shared", **over) -> dict:
    spec = {
        "name": f"test-{strategy}",
        "dataset": {"uri": empty_dataset()},
        "strategy": strategy,
        "budget": {"trials_per_phase": 4, "initial_points": 2, "parallel_trials": 4, "max_attempts": 2},
        "stopping": {"nonconvergence": {"epochs": 2, "threshold": 0.3}, "early_stopping": {"patience": 2}},
        "training": {"head_epochs": 3, "finetune_epochs": 3},
        "seed": 7,
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(spec.get(k), dict):
            spec[k] = {**spec[k], **v}
        else:
            spec[k] = v
    return spec


class FakeClock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def core(tmp_path, clock) -> OptimizerCore:
    c = OptimizerCore(str(tmp_path / "opt.db"), clock=clock)
    yield c
    c.close()


@pytest.fixture
def service(tmp_path):
    """A real optimizer gRPC server on localhost; yields (target, core)."""
    core = OptimizerCore(str(tmp_path / "svc.db"))
    server, port = make_server(core, "127.0.0.1:0")
    reaper = LeaseReaper(core, interval=0.2)
    reaper.start()
    server.start()
    yield f"127.0.0.1:{port}", core
    reaper.stopped.set()
    server.stop(grace=None).wait()
    core.close()


def start_optimizer_process(db: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``saga optimizer`` as a real process on a free port; returns (process, target)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = open(log, "a")
    proc = subprocess.Popen([sys.executable, "-m", "saga.cli.main", "optimizer", "--host", "127.0.0.1",
                             "--port", "0", "--db", str(db), "--metrics-port", "-1"],
                            stdout=subprocess.PIPE, stderr=out, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"listening on ([\d.]+:\d+)", line or "")
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"optimizer did not start; see {log}: {log.read_text()[-2000:]}")
