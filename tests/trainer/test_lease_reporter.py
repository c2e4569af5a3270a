"""A trainer keeps its lease while CPU-bound work between two reports takes longer than the lease
(dataset sync, model building, a long epoch on a busy node): the heartbeats come from a thread of
their own, over a real optimizer on localhost gRPC."""
from __future__ import annotations

import threading
import time

from optimizer_svc.client import OptimizerClient
from tests.optimizer.conftest import service, small_spec  # noqa: F401  (the fixture)
from trainer_svc.progress import Decision
from trainer_svc.worker import LeaseReporter, _heartbeat_interval


def test_a_lease_outlives_cpu_bound_work_longer_than_the_lease(service) -> None:  # noqa: F811
    target, core = service
    study = core.create_study(small_spec(strategy="joint", budget={"parallel_trials": 1},
                                         lease={"timeout_seconds": 2}))
    with OptimizerClient(target) as client:
        trial, lease = client.lease_trial("busy-worker", study_id=study.id, wait=5)
        with LeaseReporter(client, trial.id, lease.id, threading.Event(),
                           heartbeat_every_s=_heartbeat_interval(lease)) as reporter:
            busy_until = time.monotonic() + 6  # three leases' worth of pure-Python work, no report
            while time.monotonic() < busy_until:
                sum(i * i for i in range(10_000))
            # The trial was never re-queued: another worker gets nothing (the study runs one at a time).
            assert core.lease_trial("other-worker", study.id) is None
            assert reporter.report("finetune", 0, {"val_accuracy": 0.6}) is Decision.CONTINUE
        assert core.get_trial(trial.id).attempt == 1
