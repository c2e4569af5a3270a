"""Two real ``saga trainer`` processes (real TensorFlow, a tiny dataset) through the faults of a
cluster: the optimizer killed -9 three times at random moments and then down for 90 s, and the S3
server unreachable for 30 s in the middle of a trial's upload. Nothing is lost, nothing runs twice,
and no trainer exits."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datastore import open_store
from datastore.synth import synthesize
from datastore.upload import upload_dataset
from optimizer_svc.client import OptimizerClient
from saga.v1 import optimizer_pb2 as pb
from tests.faultproxy import DroppingProxy
from tests.optimizer.test_process import free_port, start_on
from tests.s3server import s3_env, start_s3_server

pytestmark = pytest.mark.slow
OBSERVED = (pb.TRIAL_SUCCEEDED, pb.TRIAL_STOPPED_EARLY)
STALL_S = 300  # fail only when nothing progresses this long: a loaded machine is slow, not broken


def spec(name: str, trials: int, head_epochs: int, lease_s: float) -> dict:
    return {"name": name, "dataset": {"uri": "s3://saga/datasets/synth"}, "strategy": "random",
            "model": {"weights": None, "image_size": 32},
            "search_space": {"backbone": {"type": "categorical", "values": ["VGG16"]},
                             "optimizer": {"type": "categorical", "values": ["Adam", "RMSprop"]},
                             "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "scale": "log"}},
            "budget": {"trials_per_phase": trials, "parallel_trials": 2, "max_attempts": 3},
            "stopping": {"nonconvergence": {"enabled": False}, "early_stopping": {"enabled": False}},
            "training": {"head_epochs": head_epochs, "finetune_epochs": 1, "batch_size": 8},
            "lease": {"timeout_seconds": lease_s}, "seed": 5}


class Stack:
    """The optimizer on a fixed port (so it can be killed and restarted), two trainers reaching S3
    through a proxy that can drop connections."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.tmp, self.env = tmp, env
        self.db, self.port = tmp / "opt.db", free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.optimizer = start_on(self.db, tmp / "optimizer.log", self.port)
        self.trainers = [self._trainer(f"trainer-{i}") for i in (1, 2)]
        self.client = OptimizerClient(self.target, retry_for=300)

    def _trainer(self, name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "a")
        return subprocess.Popen([sys.executable, "-m", "saga.cli.main", "trainer", "--optimizer", self.target,
                                 "--store", "s3://saga", "--cache-dir", str(self.tmp / "cache"),
                                 "--work-dir", str(self.tmp / name), "--worker-id", name, "--lease-wait", "5"],
                                stdout=log, stderr=log, env=self.env)

    def kill_optimizer(self) -> None:
        self.optimizer.send_signal(signal.SIGKILL)
        self.optimizer.wait(timeout=30)

    def restart_optimizer(self) -> None:
        self.optimizer = start_on(self.db, self.tmp / "optimizer.log", self.port)

    def trainers_alive(self) -> bool:
        return all(t.poll() is None for t in self.trainers)

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text()[-4000:]}" for f in sorted(self.tmp.glob("*.log")))

    def trainer_lines(self, pattern: str) -> list[str]:
        return [m for f in sorted(self.tmp.glob("trainer-*.log")) for m in re.findall(pattern, f.read_text())]

    def wait_for(self, study_id: str, done, what: str) -> None:
        """Polls the study until ``done(trials)``; fails only after STALL_S without any progress."""
        last, last_change = None, time.monotonic()
        while True:
            trials = self.client.list_trials(study_id, with_measurements=True)
            if done(trials):
                return
            state = [(t.id, t.state, len(t.measurements)) for t in trials]
            if state != last:
                last, last_change = state, time.monotonic()
            assert time.monotonic() - last_change < STALL_S, f"no progress towards {what}\n{self.logs()}"
            assert self.trainers_alive(), f"a trainer exited\n{self.logs()}"
            time.sleep(0.5)

    def close(self) -> None:
        for p in [*self.trainers, self.optimizer]:
            if p.poll() is None:
                p.terminate()
        for p in [*self.trainers, self.optimizer]:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        self.client.close()


def snapshot(client: OptimizerClient, study_id: str) -> dict:
    """What the optimizer has acknowledged: observations and every stored measurement."""
    trials = client.list_trials(study_id, with_measurements=True)
    return {"observations": {t.id: t.value for t in trials if t.state in OBSERVED},
            "measurements": {(t.id, m.attempt, m.step, m.epoch, tuple(sorted(m.metrics.items())))
                             for t in trials for m in t.measurements}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    endpoint, stop_s3 = start_s3_server()
    proxy = DroppingProxy(endpoint)
    saved = dict(os.environ)
    os.environ.update(s3_env(endpoint))
    synthesize(tmp / "images", classes=3, per_class=12, size=32, seed=2)
    upload_dataset(tmp / "images", open_store("s3://saga/datasets/synth"), seed=2)
    env = {**os.environ, **s3_env(proxy.endpoint), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": ""}
    s = Stack(tmp, env)
    s.proxy = proxy
    yield s
    s.close()
    proxy.close()
    stop_s3()
    os.environ.clear()
    os.environ.update(saved)


def test_optimizer_killed_three_times_then_down_90s_loses_and_repeats_nothing(stack):
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    study = stack.client.create_study(spec("chaos", trials=4, head_epochs=2, lease_s=60))
    stack.wait_for(study.id, lambda ts: any(t.measurements for t in ts), "the first epoch")
    for kill in range(3):
        time.sleep(rng.uniform(0.5, 6.0))
        before = snapshot(stack.client, study.id)
        stack.kill_optimizer()
        time.sleep(rng.uniform(0.0, 3.0))
        stack.restart_optimizer()
        after = snapshot(stack.client, study.id)
        assert before["measurements"] <= after["measurements"], f"kill {kill + 1} (seed {seed}) lost measurements"
        assert all(after["observations"].get(k) == v for k, v in before["observations"].items()), \
            f"kill {kill + 1} (seed {seed}) lost observations"
    # Down for 90 s, longer than the 60 s lease, while trials run.
    stack.wait_for(study.id, lambda ts: any(t.state == pb.TRIAL_RUNNING for t in ts), "a running trial")
    before = snapshot(stack.client, study.id)
    stack.kill_optimizer()
    down_until = time.monotonic() + 90
    while time.monotonic() < down_until:
        assert stack.trainers_alive(), f"a trainer exited during the outage\n{stack.logs()}"
        time.sleep(1)
    stack.restart_optimizer()
    stack.wait_for(study.id, lambda ts: stack.client.get_study(study.id).state != pb.STUDY_ACTIVE, "the end")

    final = stack.client.get_study(study.id)
    assert final.state == pb.STUDY_COMPLETED, f"{final.message} (seed {seed})\n{stack.logs()}"
    trials = stack.client.list_trials(study.id, with_measurements=True)
    after = snapshot(stack.client, study.id)
    assert before["measurements"] <= after["measurements"]
    assert len(trials) == 4 and all(t.state in OBSERVED for t in trials)  # no trial added or lost
    assert [t.attempt for t in trials] == [1, 1, 1, 1], f"attempts (seed {seed}):\n{stack.logs()}"
    for t in trials:  # each epoch stored once
        keys = [(m.attempt, m.step, m.epoch) for m in t.measurements]
        assert len(keys) == len(set(keys)) and len(keys) == 3, (t.id, keys)
    finished = stack.trainer_lines(rf"trial ({re.escape(study.id)}-\d+): SUCCEEDED in")
    assert sorted(finished) == sorted(t.id for t in trials), "each trial ran to its end exactly once"
    assert not stack.trainer_lines(r"lease lost|completion refused|not delivered")
    assert stack.trainers_alive()


def test_an_s3_outage_of_30s_during_an_upload_costs_time_not_the_trial(stack):
    stack.proxy.arm(b"PUT /saga/studies/", outage_s=30)
    study = stack.client.create_study(spec("s3-outage", trials=1, head_epochs=1, lease_s=600))
    stack.wait_for(study.id, lambda ts: stack.client.get_study(study.id).state != pb.STUDY_ACTIVE, "the end")
    assert stack.proxy.triggered_at is not None and stack.proxy.dropped > 0, "the upload never started"
    final = stack.client.get_study(study.id)
    assert final.state == pb.STUDY_COMPLETED, final.message + stack.logs()
    (trial,) = stack.client.list_trials(study.id)
    assert trial.state in OBSERVED and trial.attempt == 1
    store = open_store("s3://saga")
    for name in ("checkpoint", "metrics"):
        key = trial.artifacts[name].removeprefix("s3://saga/")
        assert key.startswith(f"studies/{study.id}/trials/{trial.id}/attempt-1/") and store.exists(key)
    assert any("retrying for up to" in line for line in stack.trainer_lines(r".*put .*failed.*"))
    assert stack.trainers_alive()
