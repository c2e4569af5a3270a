"""The optimizer as a real process: kill -9 mid-study and restart, and the ``saga study`` CLI."""
import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import psutil
import yaml

from optimizer_svc.client import OptimizerClient
from saga.v1 import optimizer_pb2 as pb

from .cheap import CheapWorker
from .conftest import small_spec, start_optimizer_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_on(db, log, port):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "saga.cli.main", "optimizer", "--host", "127.0.0.1",
                             "--port", str(port), "--db", str(db), "--metrics-port", "-1"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "a"), env=env)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
    return proc


def observations(client, study_id):
    return {t.id: (t.state, t.value, dict(t.parameters)) for t in client.list_trials(study_id)
            if t.state in (pb.TRIAL_SUCCEEDED, pb.TRIAL_STOPPED_EARLY)}


def test_kill_9_mid_study_loses_nothing_and_the_study_finishes(tmp_path):
    db, log, port = tmp_path / "opt.db", tmp_path / "opt.log", free_port()
    target = f"127.0.0.1:{port}"
    proc = start_on(db, log, port)
    client = OptimizerClient(target, retry_for=60)
    try:
        study = client.create_study(small_spec(budget={"trials_per_phase": 6, "parallel_trials": 2}))
        workers = [CheapWorker(target, study.id, f"w{i}") for i in range(2)]
        for w in workers:
            w.client.retry_for = 120
            w.start()
        deadline = time.monotonic() + 120
        while len(observations(client, study.id)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = observations(client, study.id)
        assert len(before) >= 3
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = start_on(db, log, port)  # same database, same port: the workers reconnect by themselves
        for w in workers:
            w.join(timeout=240)
            assert w.error is None, repr(w.error)
        after = observations(client, study.id)
        assert {k: after[k] for k in before} == before  # every observation survived
        final = client.get_study(study.id)
        assert final.state == pb.STUDY_COMPLETED, final.message
        assert len(after) == sum(p.budget for p in final.phases)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        client.close()


def test_the_proposal_processes_end_with_an_optimizer_killed_with_9(tmp_path):
    proc, target = start_optimizer_process(tmp_path / "opt.db", tmp_path / "opt.log")
    client = OptimizerClient(target)
    try:
        study = client.create_study(small_spec(budget={"trials_per_phase": 3, "parallel_trials": 1}))
        CheapWorker(target, study.id, "w").run()  # GP proposals: the optimizer starts its proposal process
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, [c.cmdline() for c in alive]  # no orphan keeps its memory after the optimizer
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()


def test_study_cli_create_status_watch_best_list_stop(tmp_path):
    proc, target = start_optimizer_process(tmp_path / "opt.db", tmp_path / "opt.log")
    env = {**os.environ, "SAGA_OPTIMIZER": target}

    def saga(*args, check=True):
        r = subprocess.run([sys.executable, "-m", "saga.cli.main", *args], env=env, capture_output=True,
                           text=True, timeout=120)
        assert not check or r.returncode == 0, r.stdout + r.stderr
        return r
    try:
        spec = tmp_path / "study.yaml"
        spec.write_text(yaml.safe_dump(small_spec("shared", budget={"trials_per_phase": 3})))
        out = saga("study", "create", str(spec)).stdout
        study_id = out.split()[2]
        assert out.startswith("created study st-") and "search, layer" in out
        worker = CheapWorker(target, study_id, "cli-worker")
        worker.start()
        watched = saga("study", "watch", study_id).stdout
        assert "phase layer 3/3" in watched and "best" in watched and f"study {study_id} completed" in watched, watched
        status = saga("study", "status", study_id).stdout
        assert "completed" in status and "phase 1 layer" in status and "best: st-" in status
        best = saga("study", "best", study_id).stdout
        assert "backbone=" in best and "learning_rate=" in best and "checkpoint: s3://test-artifacts/" in best
        assert study_id in saga("study", "list").stdout
        bad = tmp_path / "bad.yaml"
        bad.write_text("strategy: shared\n")
        r = saga("study", "create", str(bad), check=False)
        assert r.returncode == 2 and "dataset.uri" in r.stderr
        r = saga("study", "status", "st-nope", check=False)
        assert r.returncode == 2 and "not found" in r.stderr
        second = saga("study", "create", str(spec)).stdout.split()[2]
        assert "stopped" in saga("study", "stop", second).stdout
        worker.join(timeout=60)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
