"""The optimizer over real localhost gRPC under the load and faults of a cluster: many idle
streams and long-polls, answers that arrive after the caller's deadline, a full disk."""
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from optimizer_svc.admission import Limits
from optimizer_svc.client import OptimizerClient
from optimizer_svc.core import OptimizerCore
from optimizer_svc.proposer import RandomProposer
from optimizer_svc.server import make_server
from saga.v1 import optimizer_pb2 as pb
from saga.v1 import optimizer_pb2_grpc as pb_grpc

from .conftest import small_spec


def wait_until(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.05)


def test_seventy_idle_streams_and_seventy_long_polls_do_not_starve_short_calls(service):
    target, core = service
    client = OptimizerClient(target)
    busy = client.create_study(small_spec(budget={"parallel_trials": 1}))
    trial, lease = client.lease_trial("busy-worker", study_id=busy.id, wait=5)
    quiet = client.create_study(small_spec(name="nobody-works-here"))
    channel = grpc.insecure_channel(target)
    stub = pb_grpc.OptimizerStub(channel)
    streams = [stub.WatchStudy(pb.WatchStudyRequest(study_id=quiet.id)) for _ in range(70)]
    # Long-polls for a trial of the busy study, which has none to give (parallel_trials 1).
    polls = [stub.LeaseTrial.future(pb.LeaseTrialRequest(worker_id=f"idle-{i}", study_id=busy.id,
                                                          timeout_seconds=60), timeout=90)
             for i in range(70)]
    try:
        for s in streams[:5]:
            assert next(s).event == "snapshot"
        wait_until(lambda: core.metrics.rpcs.labels("WatchStudy", "OK")._value.get() >= 70, what="70 open streams")
        time.sleep(1.0)  # let the long-polls reach the server and park
        health = health_pb2_grpc.HealthStub(channel)
        for epoch in range(5):
            started = time.monotonic()
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                health_pb2.HealthCheckResponse.SERVING
            resp = stub.ReportProgress(pb.ReportProgressRequest(trial_id=trial.id, lease_id=lease.id, step="head",
                                                                epoch=epoch, metrics={"val_accuracy": 0.4 + 0.1 * epoch}), timeout=1)
            assert resp.decision == pb.CONTINUE
            assert stub.GetStudy(pb.GetStudyRequest(study_id=busy.id), timeout=1).study.id == busy.id
            assert time.monotonic() - started < 3
        assert not any(p.done() for p in polls)  # still waiting, each holding no thread
    finally:
        for s in streams:
            s.cancel()
        for p in polls:
            p.cancel()
        channel.close()
        client.close()


def test_streams_beyond_the_cap_are_refused_with_a_retry_hint(tmp_path):
    core = OptimizerCore(str(tmp_path / "o.db"))
    server, port = make_server(core, "127.0.0.1:0", limits=Limits(max_streams=2))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.OptimizerStub(channel)
            study = OptimizerClient(f"127.0.0.1:{port}").create_study(small_spec())
            open_ = [stub.WatchStudy(pb.WatchStudyRequest(study_id=study.id)) for _ in range(2)]
            for s in open_:
                next(s)
            with pytest.raises(grpc.RpcError) as refused:
                next(stub.WatchStudy(pb.WatchStudyRequest(study_id=study.id), timeout=10))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many open WatchStudy streams" in refused.value.details()
            assert ("saga-retry-after-s", "5") in refused.value.trailing_metadata()
            open_[0].cancel()
            time.sleep(0.5)
            assert next(stub.WatchStudy(pb.WatchStudyRequest(study_id=study.id), timeout=10)).event == "snapshot"
    finally:
        server.stop(None).wait()
        core.close()


@pytest.fixture
def slow_proposals(monkeypatch):
    """Every proposal takes 2.5 s, as a GP fit on a loaded machine can."""
    real = RandomProposer.propose

    def slow(self, *a, **k):
        time.sleep(2.5)
        return real(self, *a, **k)
    monkeypatch.setattr(RandomProposer, "propose", slow)


def test_a_lease_granted_after_the_callers_deadline_is_put_back(service, slow_proposals):
    target, core = service
    client = OptimizerClient(target)
    study = client.create_study(small_spec("random", budget={"max_attempts": 1}))
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as late:
            pb_grpc.OptimizerStub(channel).LeaseTrial(
                pb.LeaseTrialRequest(worker_id="impatient", study_id=study.id, request_id="r1"), timeout=1)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: client.list_trials(study.id), what="the slow proposal")
    wait_until(lambda: client.list_trials(study.id)[0].state == pb.TRIAL_PENDING, timeout=10,
               what="the unreceived grant put back")
    assert core.metrics.grants_released._value.get() == 1
    trial, _ = client.lease_trial("patient", study_id=study.id, wait=5)
    assert trial.attempt == 1  # nobody ran it: no attempt used (max_attempts is 1)
    client.close()


def test_a_retried_lease_after_a_deadline_gets_one_trial_and_leaves_no_orphan(service, slow_proposals):
    target, core = service
    setup = OptimizerClient(target)
    study = setup.create_study(small_spec("random", budget={"parallel_trials": 4}))
    worker = OptimizerClient(target, deadline=1.0, retry_for=60)  # each try gives up after 1 s
    got = worker.lease_trial("w", study_id=study.id, wait=0)
    assert got is not None
    trial, lease = got
    time.sleep(3)  # any grant still under way lands
    trials = setup.list_trials(study.id)
    assert [(t.id, t.state, t.worker_id) for t in trials] == [(trial.id, pb.TRIAL_RUNNING, "w")]
    assert setup.get_trial(trial.id).attempt == 1
    decision, _ = worker.report_progress(trial.id, lease.id, "head", 0, {"val_accuracy": 0.5})
    assert decision == "continue"  # the lease the worker holds is the trial's lease
    worker.close()
    setup.close()


def test_a_full_disk_is_resource_exhausted_and_a_trainer_completion_waits_it_out(service):
    target, core = service
    client = OptimizerClient(target)
    study = client.create_study(small_spec())
    trial, lease = client.lease_trial("w", study_id=study.id, wait=5)
    client.report_progress(trial.id, lease.id, "head", 0, {"val_accuracy": 0.8})
    with core._lock:
        pages = core.db.conn.execute("PRAGMA page_count").fetchone()[0]
        core.db.conn.execute(f"PRAGMA max_page_count = {pages}")
    artifacts = {f"file{i}": "s3://bucket/" + "x" * 4000 for i in range(50)}  # needs new pages
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as full:
            pb_grpc.OptimizerStub(channel).CompleteTrial(pb.CompleteTrialRequest(
                trial_id=trial.id, lease_id=lease.id, outcome=pb.OUTCOME_SUCCEEDED, artifacts=artifacts), timeout=10)
    assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "disk full" in full.value.details() and ("saga-retry-after-s", "10") in full.value.trailing_metadata()

    def free_space():
        time.sleep(2)
        with core._lock:
            core.db.conn.execute(f"PRAGMA max_page_count = {pages * 1000}")
    threading.Thread(target=free_space).start()
    started = time.monotonic()
    done = client.complete_trial(trial.id, lease.id, "SUCCEEDED", artifacts=artifacts, retry_for=None)
    assert done.state == pb.TRIAL_SUCCEEDED and len(done.artifacts) == 50
    assert 2 <= time.monotonic() - started < 30
    assert core.metrics.rpcs.labels("CompleteTrial", "INTERNAL")._value.get() == 0
    client.close()


def test_heartbeats_that_find_the_core_busy_are_stored_together_each_with_its_answer(service, monkeypatch):
    """While a long call holds the core, ReportProgress calls wait on the event loop and are then
    stored in batches (one commit each): every one is answered, a refused one alone."""
    target, core = service
    client = OptimizerClient(target)
    client.create_study(small_spec())
    leased = [client.lease_trial(f"w{i}", wait=5) for i in range(4)]
    batches = []
    real = core.report_progress_many
    monkeypatch.setattr(core, "report_progress_many", lambda reports: batches.append(len(reports)) or real(reports))
    channel = grpc.insecure_channel(target)
    stub = pb_grpc.OptimizerStub(channel)
    try:
        with core._lock:  # a long call (a study read of thousands of trials, say) holds the core
            calls = [stub.ReportProgress.future(pb.ReportProgressRequest(
                trial_id=t.id, lease_id=lease.id, step="head", epoch=e, metrics={"val_accuracy": 0.5 + 0.1 * e}),
                timeout=30) for e in range(3) for t, lease in leased]
            refused = stub.ReportProgress.future(pb.ReportProgressRequest(
                trial_id=leased[0][0].id, lease_id="stale", step="head", epoch=5, metrics={"val_accuracy": 0.9}),
                timeout=30)
            wait_until(lambda: batches, what="a first batch waiting for the core")
            time.sleep(0.5)  # the rest arrive and wait behind it
        assert all(c.result().decision == pb.CONTINUE for c in calls)
        with pytest.raises(grpc.RpcError) as err:
            refused.result()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert sum(batches) == 13 and max(batches) > 1, batches
        for t, _ in leased:
            assert sorted(m.epoch for m in core.get_trial(t.id).measurements) == [0, 1, 2]
    finally:
        channel.close()
        client.close()
