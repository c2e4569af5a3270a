"""``saga up`` as a user runs it: every service answers where it says it listens, SIGTERM stops
them all with nothing left behind, and a service that dies takes the stack down loudly."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .helpers import ROOT, alive, descendants, in_groups, kill_tree, read_until, saga_process

READY = r"Ctrl-C or SIGTERM stops everything"
FREE_PORTS = ("--optimizer-port", "0", "--grpc-port", "0", "--rest-port", "0", "--dashboard-port", "0")


def _health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def test_up_serves_everything_and_sigterm_stops_all(tmp_path: Path) -> None:
    proc = saga_process("up", "--workers", "2", "--dir", str(tmp_path / "up"), *FREE_PORTS)
    children: set[int] = set()
    try:
        out = read_until(proc, READY, timeout_s=240)
        children = descendants(proc.pid)
        optimizer = re.search(r"optimizer gRPC\s+(\S+)", out).group(1)
        rest = re.search(r"REST (http://\S+/v1/models/saga)", out).group(1)
        serving_grpc = re.search(r"serving gRPC\s+(\S+)", out).group(1)
        metrics = re.findall(r"metrics (http://\S+/metrics)", out)
        assert len(metrics) == 4  # optimizer, 2 trainers, serving
        assert len(children) >= 4
        assert (tmp_path / "up" / "logs" / "trainer-2.log").is_file()

        assert _health(optimizer) == health_pb2.HealthCheckResponse.SERVING
        # No model exported yet: 404 "Could not find any versions", as TF Serving answers.
        status = requests.get(rest, timeout=10)
        assert status.status_code == 404 and "Could not find any versions" in status.json()["error"]
        assert _health(serving_grpc) in (health_pb2.HealthCheckResponse.SERVING,
                                         health_pb2.HealthCheckResponse.NOT_SERVING)
        for url in metrics:
            assert requests.get(url, timeout=10).status_code == 200
        dashboard = re.search(r"dashboard\s+(http://\S+)", out).group(1)
        assert requests.get(f"{dashboard}api/studies", timeout=30).json() == []
        assert "saga_trainer_busy" in requests.get(metrics[1], timeout=10).text

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        rest_of_output = proc.stdout.read()
        assert "stopping all services" in rest_of_output and "killed" not in rest_of_output
        left = {pid for pid in children if alive(pid)} | in_groups(children)
        assert not left, f"processes left behind: {left}"
    finally:
        if proc.poll() is None or children:
            kill_tree(proc, children)


def test_a_dying_service_stops_the_stack_with_its_last_log_lines(tmp_path: Path) -> None:
    proc = saga_process("up", "--workers", "1", "--no-serving", "--dir", str(tmp_path / "up"), *FREE_PORTS)
    children: set[int] = set()
    try:
        read_until(proc, READY, timeout_s=240)
        children = descendants(proc.pid)
        trainer = next(pid for pid in children if "trainer-1" in Path(f"/proc/{pid}/cmdline").read_text())
        Path(tmp_path / "up" / "logs" / "trainer-1.log").open("a").write("marker: last words\n")
        time.sleep(0.2)
        os.kill(trainer, signal.SIGKILL)
        assert proc.wait(timeout=60) == 1
        err = proc.stderr.read()
        assert "trainer-1" in err and "killed by signal 9" in err and "marker: last words" in err
        left = {pid for pid in children if alive(pid)} | in_groups(children)
        assert not left, f"processes left behind: {left}"
    finally:
        if proc.poll() is None or children:
            kill_tree(proc, children)


@pytest.mark.parametrize("args, message", [
    (("--workers", "-1"), "--workers must be in [0, 64]"),
    (("--model-name", "a/b"), "contain no '/'"),
])
def test_bad_arguments_are_refused_before_anything_starts(tmp_path: Path, args, message) -> None:
    proc = saga_process("up", "--dir", str(tmp_path / "up"), *args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and message in err
    assert not (tmp_path / "up" / "logs").exists()


def test_ctrl_c_with_output_through_a_pipe_stops_every_child_and_logs_start_afresh(tmp_path: Path) -> None:
    up = tmp_path / "up"
    (up / "logs").mkdir(parents=True)
    # A previous run's log: its address must not be taken for this run's.
    (up / "logs" / "optimizer.log").write_text("optimizer listening on 127.0.0.1:1\n")
    out = tmp_path / "out.txt"
    command = (f"{shlex.quote(sys.executable)} -m saga.cli.main up --workers 1 --no-serving --dir {shlex.quote(str(up))} "
               f"--optimizer-port 0 | tee {shlex.quote(str(out))} > /dev/null")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while READY not in (out.read_text() if out.exists() else ""):
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text() if out.exists() else ""
            time.sleep(0.5)
        children = descendants(proc.pid)
        assert re.search(r"optimizer gRPC\s+127\.0\.0\.1:(\d+)", out.read_text()).group(1) != "1"
        assert "127.0.0.1:1\n" not in (up / "logs" / "optimizer.log").read_text()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals saga up and tee together
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while (left := {pid for pid in children if alive(pid)} | in_groups(children)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left, f"processes left behind: {left}"
    finally:
        if proc.poll() is None or children:
            kill_tree(proc, children)
