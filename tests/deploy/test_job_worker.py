"""A trainer as a Kubernetes Job's worker: it exits 0 when its study has no more work, and 143 when
stopped before that, which the Job's podFailurePolicy does not count (k8s/overlays/kueue)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from optimizer_svc.client import OptimizerClient
from saga.cli.trainer import EXIT_INTERRUPTED
from tests.optimizer.conftest import service, small_spec  # noqa: F401  (the fixture)

ONE_AT_A_TIME = {"budget": {"trials_per_phase": 2, "parallel_trials": 1}}


def test_a_worker_waits_while_its_study_is_active_and_exits_when_it_ends(service, tmp_path) -> None:  # noqa: F811
    from trainer_svc.worker import Worker

    target, core = service
    study = core.create_study(small_spec(**ONE_AT_A_TIME))
    held = core.lease_trial("another-worker", study.id)  # the study's one parallel slot is taken
    assert held is not None
    with OptimizerClient(target) as client:
        worker = Worker(client, str(tmp_path / "store"), worker_id="job-worker", cache_dir=tmp_path / "cache",
                        work_dir=tmp_path / "work", study_id=study.id, lease_wait=0.2)
        ran: list[int] = []
        thread = threading.Thread(target=lambda: ran.append(worker.run(exit_when_done=True)), daemon=True)
        thread.start()
        time.sleep(2)
        assert thread.is_alive()  # nothing to lease now, but the study is not done: keep the slot's worker
        core.stop_study(study.id)
        thread.join(timeout=30)
        assert not thread.is_alive() and ran == [0]


def test_a_worker_of_an_ended_study_asks_once_per_lease_wait(service, tmp_path) -> None:  # noqa: F811
    """Without --exit-when-done a trainer outlives its study; the optimizer answers it at once
    (the study has ended), and the trainer still asks only once per lease wait, not in a loop."""
    from trainer_svc.worker import Worker

    target, core = service
    study = core.create_study(small_spec(**ONE_AT_A_TIME))
    core.stop_study(study.id)
    with OptimizerClient(target) as client:
        asked: list[float] = []
        lease = client.lease_trial
        client.lease_trial = lambda *a, **k: asked.append(time.monotonic()) or lease(*a, **k)  # type: ignore[method-assign]
        worker = Worker(client, str(tmp_path / "store"), worker_id="idle-worker", cache_dir=tmp_path / "cache",
                        work_dir=tmp_path / "work", study_id=study.id, lease_wait=0.5)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        time.sleep(2.2)
        worker.stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert 3 <= len(asked) <= 6, len(asked)  # about one call per 0.5 s in 2.2 s


def test_a_trainer_stopped_before_its_study_is_done_exits_143(service, tmp_path) -> None:  # noqa: F811
    target, core = service
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}

    def trainer(study_id: str) -> subprocess.Popen:  # exit 0 when done: the test above, through Worker.run
        return subprocess.Popen([sys.executable, "-m", "saga.cli.main", "trainer", "--optimizer", target,
                                 "--study", study_id, "--exit-when-done", "--lease-wait", "0.5",
                                 "--store", str(tmp_path / "store"), "--cache-dir", str(tmp_path / "cache")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    busy = core.create_study(small_spec(**ONE_AT_A_TIME))
    core.lease_trial("another-worker", busy.id)
    waiting = trainer(busy.id)
    try:
        for line in waiting.stdout:  # up and asking for work
            if "working for" in line:
                break
        time.sleep(1)
        waiting.send_signal(signal.SIGTERM)  # a preemption or drain while its study still runs
        assert waiting.wait(timeout=120) == EXIT_INTERRUPTED
    finally:
        if waiting.poll() is None:
            waiting.kill()


def test_a_job_worker_asking_whether_its_study_is_done_outlives_an_optimizer_outage(tmp_path) -> None:
    """The check between two leases must not end the worker when the optimizer is away (it would
    otherwise exit on a transport error, a failed pod of the Job): no answer counts as 'not done'."""
    from optimizer_svc.core import OptimizerCore
    from optimizer_svc.server import make_server
    from trainer_svc.worker import Worker

    core = OptimizerCore(str(tmp_path / "svc.db"))
    server, port = make_server(core, "127.0.0.1:0")
    server.start()
    study = core.create_study(small_spec(**ONE_AT_A_TIME))
    with OptimizerClient(f"127.0.0.1:{port}", retry_for=0.5, deadline=2) as client:
        worker = Worker(client, str(tmp_path / "store"), worker_id="job-worker", cache_dir=tmp_path / "cache",
                        work_dir=tmp_path / "work", study_id=study.id, lease_wait=0.2)
        assert worker.no_more_work() is False
        server.stop(grace=None).wait()  # the optimizer restarts (or its node is drained)
        core.close()
        assert worker.no_more_work() is False  # no answer: keep the worker, the next lease waits
