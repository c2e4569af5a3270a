"""The optimizer over real localhost gRPC: whole studies with 4 workers, health, reflection, bad input."""
import json
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given, settings, strategies as st
from prometheus_client import start_http_server

from optimizer_svc.client import OptimizerClient
from optimizer_svc.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from saga.v1 import optimizer_pb2 as pb
from saga.v1 import optimizer_pb2_grpc as pb_grpc

from .cheap import CheapWorker
from .conftest import small_spec

ALLOWED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
           grpc.StatusCode.RESOURCE_EXHAUSTED}


def run_workers(target, study_id, n=4):
    workers = [CheapWorker(target, study_id, f"worker-{i}") for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=240)
    for w in workers:
        assert w.error is None, repr(w.error)
        assert not w.is_alive()
    return workers


@pytest.mark.parametrize("strategy", ["shared", "separate", "separate_steps", "joint", "random"])
def test_four_workers_drive_every_strategy_to_completion(service, strategy):
    target, _ = service
    client = OptimizerClient(target)
    study = client.create_study(small_spec(strategy))
    workers = run_workers(target, study.id)
    study = client.get_study(study.id)
    assert study.state == pb.STUDY_COMPLETED, study.message
    trials = client.list_trials(study.id)
    assert len(trials) == sum(p.budget for p in study.phases)
    assert {t.state for t in trials} <= {pb.TRIAL_SUCCEEDED, pb.TRIAL_STOPPED_EARLY}
    assert sum(len(w.ran) for w in workers) == len(trials)
    assert sum(1 for w in workers if w.ran) >= 2  # the work was shared
    best = client.best_trial(study.id)
    assert best.has_value and best.value == max(t.value for t in trials)
    # every phase after the first carries the previous phase's best parameters
    for phase in study.phases[1:]:
        prev = client.best_trial(study.id, phase=phase.index - 1)
        for t in client.list_trials(study.id, phase=phase.index):
            assert t.parameters["backbone"] == prev.parameters["backbone"]
    client.close()


def test_each_phase_publishes_the_space_it_searches_and_trials_list_with_measurements(service):
    target, _ = service
    client = OptimizerClient(target)
    study = client.create_study(small_spec("shared"))
    search, layer = study.phases
    assert [p["name"] for p in json.loads(search.space_json)] == ["backbone", "optimizer", "learning_rate"]
    assert layer.space_json == ""  # its bound comes from the best search trial: unknown before it starts
    run_workers(target, study.id)
    layer = client.get_study(study.id).phases[1]
    assert json.loads(layer.space_json) == [{"name": "delimiting_layer", "type": "int", "low": 0, "high": 99}]
    trials = client.list_trials(study.id, with_measurements=True)
    assert all(t.measurements for t in trials) and not any(t.measurements for t in client.list_trials(study.id))
    assert [m.epoch for m in trials[0].measurements] == [m.epoch for m in client.get_trial(trials[0].id).measurements]
    client.close()


def test_a_vanished_worker_loses_its_trial_to_another(service):
    target, core = service
    client = OptimizerClient(target)
    study = client.create_study(small_spec(lease={"timeout_seconds": 1}, budget={"trials_per_phase": 2, "parallel_trials": 1}))
    trial, lease = client.lease_trial("doomed")
    client.report_progress(trial.id, lease.id, "head", 0, {"val_accuracy": 0.5})
    # "doomed" never reports again; the reaper re-queues the trial and another worker runs it
    again, lease2 = client.lease_trial("rescuer", wait=10)
    assert again.id == trial.id and again.attempt == 2 and lease2.id != lease.id
    with pytest.raises(FailedPrecondition):
        client.complete_trial(trial.id, lease.id, "SUCCEEDED", metrics={"val_accuracy": 0.9})
    assert core.metrics.lease_expiries._value.get() >= 1
    client.stop_study(study.id)
    client.close()


def test_workers_waiting_for_a_study_hear_of_its_end_at_once(service):
    """LeaseTrial calls parked on a study (every slot taken) answer "no trial" when it ends, not
    when their wait is up: trainers do not sit out a long-poll on a finished study."""
    target, _ = service
    client = OptimizerClient(target)
    study = client.create_study(small_spec(budget={"trials_per_phase": 2, "parallel_trials": 1}))
    assert client.lease_trial("busy", study_id=study.id) is not None
    answers, waiters = [], []
    for i in range(3):
        def wait(i=i):
            c = OptimizerClient(target)
            t0 = time.monotonic()
            answers.append((c.lease_trial(f"idle-{i}", study_id=study.id, wait=30), time.monotonic() - t0))
            c.close()
        waiters.append(threading.Thread(target=wait))
        waiters[-1].start()
    time.sleep(1.0)  # all three are parked
    assert not answers
    client.stop_study(study.id)
    for w in waiters:
        w.join(timeout=10)
    assert len(answers) == 3 and all(got is None and waited < 5 for got, waited in answers), answers
    client.close()


def test_health_reflection_and_metrics(service):
    target, core = service
    channel = grpc.insecure_channel(target)
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "saga.v1.Optimizer"):
        assert health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    resp = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=5))
    assert "saga.v1.Optimizer" in {s.name for s in resp.list_services_response.service}
    client = OptimizerClient(target)
    study = client.create_study(small_spec(budget={"trials_per_phase": 1}))
    with pytest.raises(NotFound):
        client.get_study("st-missing")
    run_workers(target, study.id, n=1)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=core.metrics.registry)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    finished = sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(('saga_trials{state="SUCCEEDED"}', 'saga_trials{state="STOPPED_EARLY"}')))
    assert finished == len(client.list_trials(study.id)) == 2  # search + layer, read from the database at scrape time
    assert 'saga_rpcs_total{code="NOT_FOUND",method="GetStudy"} 1.0' in text
    assert 'saga_rpcs_total{code="OK",method="CompleteTrial"}' in text
    for name in ("saga_proposal_seconds_bucket", "saga_gp_fit_seconds_bucket", "saga_lease_expiries_total"):
        assert name in text
    channel.close()
    client.close()


def test_watch_streams_progress_until_the_study_ends(service):
    target, _ = service
    client = OptimizerClient(target)
    study = client.create_study(small_spec("joint", budget={"trials_per_phase": 3}))
    events = []
    watcher = threading.Thread(target=lambda: events.extend(client.watch(study.id)), daemon=True)
    watcher.start()
    run_workers(target, study.id, n=2)
    watcher.join(timeout=30)
    kinds = [e.event for e in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "study_finished"
    assert {"trial_created", "progress", "trial_finished"} <= set(kinds)
    assert events[-1].study.state == pb.STUDY_COMPLETED and events[-1].HasField("best_trial")
    client.close()


def test_bad_requests_get_clear_codes_and_the_service_keeps_serving(service):
    target, _ = service
    client = OptimizerClient(target)
    with pytest.raises(InvalidArgument, match="dataset.uri"):
        client.create_study({"strategy": "shared"})
    with pytest.raises(InvalidArgument, match="spec"):
        client.create_study("{{{")
    with pytest.raises(NotFound):
        client.get_trial("st-x-0001")
    with pytest.raises(NotFound):
        client.lease_trial("w", study_id="st-unknown", wait=0)
    study = client.create_study(small_spec())
    trial, lease = client.lease_trial("w")
    with pytest.raises(InvalidArgument, match="finite"):
        client.report_progress(trial.id, lease.id, "head", 0, {"loss": float("nan")})
    with pytest.raises(FailedPrecondition):
        client.report_progress(trial.id, "not-the-lease", "head", 0, {"loss": 1.0})
    stub = pb_grpc.OptimizerStub(grpc.insecure_channel(target))
    with pytest.raises(grpc.RpcError) as e:
        stub.CompleteTrial(pb.CompleteTrialRequest(trial_id=trial.id, lease_id=lease.id), timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "outcome" in e.value.details()
    with pytest.raises(ResourceExhausted):
        client.create_study("x" * (5 * 1024 * 1024))
    # still serving, and nothing stored was touched
    assert client.get_trial(trial.id).state == pb.TRIAL_RUNNING
    assert client.get_study(study.id).state == pb.STUDY_ACTIVE
    client.close()


text = st.text(max_size=40)
metrics = st.dictionaries(st.text(max_size=10), st.floats(allow_nan=True, allow_infinity=True), max_size=4)
spec_values = st.one_of(text, st.integers(), st.floats(), st.none(), st.dictionaries(text, text, max_size=2))
specs = st.one_of(text, st.dictionaries(
    st.sampled_from(["dataset", "strategy", "budget", "seed", "search_space", "name", "stopping"]),
    spec_values, max_size=4).map(lambda d: json.dumps({"dataset": {"uri": "/d"}, **d})))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_requests_never_get_internal_or_unknown(service, data):
    target, _ = service
    stub = pb_grpc.OptimizerStub(grpc.insecure_channel(target))
    calls = {
        "CreateStudy": lambda: stub.CreateStudy(pb.CreateStudyRequest(spec_json=data.draw(specs)), timeout=10),
        "GetStudy": lambda: stub.GetStudy(pb.GetStudyRequest(study_id=data.draw(text)), timeout=10),
        "LeaseTrial": lambda: stub.LeaseTrial(pb.LeaseTrialRequest(
            worker_id=data.draw(text), study_id=data.draw(text),
            timeout_seconds=data.draw(st.one_of(st.floats(max_value=0.2), st.just(float("nan"))))), timeout=10),
        "ReportProgress": lambda: stub.ReportProgress(pb.ReportProgressRequest(
            trial_id=data.draw(text), lease_id=data.draw(text), step=data.draw(text),
            epoch=data.draw(st.integers(-2**31, 2**31 - 1)), metrics=data.draw(metrics)), timeout=10),
        "CompleteTrial": lambda: stub.CompleteTrial(pb.CompleteTrialRequest(
            trial_id=data.draw(text), lease_id=data.draw(text), outcome=data.draw(st.integers(0, 5)),
            metrics=data.draw(metrics), artifacts=data.draw(st.dictionaries(text, text, max_size=3)),
            error=data.draw(text)), timeout=10),
        "GetBestTrial": lambda: stub.GetBestTrial(pb.GetBestTrialRequest(
            study_id=data.draw(text), phase=data.draw(st.integers(-5, 5)), has_phase=data.draw(st.booleans())),
            timeout=10),
        "ListTrials": lambda: stub.ListTrials(pb.ListTrialsRequest(
            study_id=data.draw(text), phase=data.draw(st.integers(-5, 5)), has_phase=data.draw(st.booleans())),
            timeout=10),
        "StopStudy": lambda: stub.StopStudy(pb.StopStudyRequest(study_id=data.draw(text), reason=data.draw(text)),
                                            timeout=10),
    }
    name = data.draw(st.sampled_from(sorted(calls)))
    try:
        calls[name]()
    except grpc.RpcError as e:
        assert e.code() in ALLOWED, f"{name}: {e.code()} {e.details()}"
    assert stub.ListStudies(pb.ListStudiesRequest(), timeout=10) is not None
