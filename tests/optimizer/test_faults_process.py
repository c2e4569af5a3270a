"""Real processes: a taken port is one line and an exit code for every server, and a database of
the previous release opens in ``saga optimizer``."""
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import start_optimizer_process
from .test_faults_core import RELEASE_1

ROOT = Path(__file__).resolve().parents[2]


def saga(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "saga.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


@pytest.fixture
def taken_port():
    """A port another process listens on (a plain socket: no SO_REUSEPORT)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def one_line_naming(stderr: str, port: int) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert f"port {port}" in lines[0] and "already in use" in lines[0], lines[0]
    return lines[0]


def test_a_second_optimizer_on_a_taken_port_exits_with_one_line(tmp_path):
    first, target = start_optimizer_process(tmp_path / "first.db", tmp_path / "first.log")
    try:
        port = int(target.rsplit(":", 1)[1])
        r = saga("optimizer", "--host", "127.0.0.1", "--port", str(port), "--db", str(tmp_path / "second.db"),
                 "--metrics-port", "-1")
        assert r.returncode == 1
        assert one_line_naming(r.stderr, port).startswith("saga optimizer: optimizer: ")
        assert "listening" not in r.stdout
        created = saga("study", "create", str(ROOT / "examples" / "kvasir-shared.yaml"), env={"SAGA_OPTIMIZER": target})
        assert created.returncode == 0, created.stderr
        listed = saga("study", "list", env={"SAGA_OPTIMIZER": target})
        assert listed.stdout.count("st-") == 1  # one optimizer, one database answers
        assert first.poll() is None
    finally:
        first.terminate()
        first.wait(timeout=30)


def test_a_taken_metrics_port_is_one_line_too(tmp_path, taken_port):
    r = saga("optimizer", "--host", "127.0.0.1", "--port", "0", "--db", str(tmp_path / "o.db"),
             "--metrics-port", str(taken_port))
    assert r.returncode == 1
    assert "optimizer metrics: port" in one_line_naming(r.stderr, taken_port)


def test_saga_up_on_a_taken_port_starts_nothing(tmp_path, taken_port):
    r = saga("up", "--workers", "1", "--dir", str(tmp_path / "up"), "--optimizer-port", str(taken_port))
    assert r.returncode == 1
    assert one_line_naming(r.stderr, taken_port).startswith("saga up: optimizer: ")
    assert not (tmp_path / "up" / "logs").exists()


def test_saga_serve_on_a_taken_port_exits_with_one_line(tmp_path, taken_port):
    r = saga("serve", "--model-base", str(tmp_path / "models"), "--model-name", "m", "--host", "127.0.0.1",
             "--grpc-port", str(taken_port), "--rest-port", "0", "--metrics-port", "-1", timeout=300,
             env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert r.returncode == 1
    line = [x for x in r.stderr.splitlines() if x.startswith("saga serve:")]
    assert len(line) == 1 and f"serving gRPC: port {taken_port} on 127.0.0.1 is already in use" in line[0], r.stderr


def test_saga_optimizer_opens_a_database_of_the_previous_release(tmp_path):
    db = tmp_path / "optimizer.db"
    shutil.copy(RELEASE_1, db)
    proc, target = start_optimizer_process(db, tmp_path / "opt.log")
    try:
        listed = saga("study", "list", env={"SAGA_OPTIMIZER": target})
        assert listed.returncode == 0, listed.stderr
        for name, state in (("finished-study", "completed"), ("active-study", "active"), ("stopped-study", "stopped")):
            assert any(name in line and state in line for line in listed.stdout.splitlines()), listed.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=30)
