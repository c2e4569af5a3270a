"""Secrets never leave where they are kept: a real study (optimizer and trainer processes over TLS
with role tokens, S3 keys in their environment, DEBUG logging) and then a search of every log, the
optimizer's SQLite files, both processes' metrics, `saga study status --json`, `saga report` and
every object the study wrote to the store for the tokens (also one presented and refused) and the
S3 keys."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from datastore import open_store
from datastore.synth import synthesize
from datastore.upload import upload_dataset
from optimizer_svc.client import OptimizerClient
from optimizer_svc.errors import Unauthenticated
from saga.security.channels import ClientSecurity
from saga.security.tls import ClientTLS
from saga.security.tokens import line_for, new_token
from saga.v1 import optimizer_pb2 as pb
from tests.s3server import s3_env

pytestmark = pytest.mark.slow

WORKER, CLIENT, REFUSED = new_token(), new_token(), new_token()
S3_ACCESS, S3_SECRET = "planted-access-7c1e", "planted-secret-0b9d4f6a2e"


def started(p: subprocess.Popen, log: Path, pattern: str) -> re.Match:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        assert p.poll() is None, log.read_text()
        time.sleep(0.2)
    raise AssertionError(f"{log.name}: no {pattern!r}\n{log.read_text()}")


def test_no_secret_in_logs_database_metrics_status_report_or_store(tmp_path, s3_endpoint, certs):
    env = {**os.environ, **s3_env(s3_endpoint), "SAGA_S3_ACCESS_KEY": S3_ACCESS, "SAGA_S3_SECRET_KEY": S3_SECRET,
           "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    saved = dict(os.environ)
    os.environ.update({k: env[k] for k in env if k.startswith("SAGA_S3_")})
    try:
        synthesize(tmp_path / "images", classes=2, per_class=8, size=32, seed=1)
        upload_dataset(tmp_path / "images", open_store("s3://secrets/datasets/synth"), seed=1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    (tmp_path / "worker-token").write_text(WORKER + "\n")
    (tmp_path / "hashes").write_text(f"{line_for(WORKER, ['worker'])}\n{line_for(CLIENT, ['client'])}\n")
    tls = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
    logs, procs = tmp_path / "logs", []
    logs.mkdir()

    def spawn(name: str, args: list[str], extra: dict[str, str]) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "w")
        p = subprocess.Popen([sys.executable, "-m", "saga.cli.main", "--log-level", "DEBUG", *args],
                             stdout=out, stderr=out, env={**env, **extra})
        procs.append(p)
        return p

    try:
        opt = spawn("optimizer", ["optimizer", "--host", "127.0.0.1", "--port", "0", "--db", str(tmp_path / "o.db"),
                                  "--metrics-port", "0", "--token-hashes", str(tmp_path / "hashes"), *tls], {})
        port = started(opt, logs / "optimizer.log", r"listening on 127\.0\.0\.1:(\d+)")[1]
        opt_metrics = started(opt, logs / "optimizer.log", r"metrics on :(\d+)")[1]
        target = f"localhost:{port}"
        trainer = spawn("trainer", ["trainer", "--optimizer", target, "--store", "s3://secrets",
                                    "--cache-dir", str(tmp_path / "cache"), "--metrics-port", "0",
                                    "--lease-wait", "2", "--tls-ca", str(certs.ca)],
                        {"SAGA_TOKEN_FILE": str(tmp_path / "worker-token")})  # as a mounted Secret
        trainer_metrics = started(trainer, logs / "trainer.log", r"metrics on :(\d+)")[1]
        with pytest.raises(Unauthenticated):  # a refused token must not be logged either
            OptimizerClient(target, retry_for=0, security=ClientSecurity(ClientTLS(certs.ca), REFUSED)).list_studies()
        client = OptimizerClient(target, security=ClientSecurity(ClientTLS(certs.ca), CLIENT))
        study = client.create_study({
            "name": "secrets", "dataset": {"uri": "s3://secrets/datasets/synth"}, "strategy": "random",
            "model": {"weights": None, "image_size": 32},
            "search_space": {"backbone": {"type": "categorical", "values": ["VGG16"]}},
            "budget": {"trials_per_phase": 1, "initial_points": 1, "parallel_trials": 1},
            "training": {"head_epochs": 1, "finetune_epochs": 1, "batch_size": 8}, "seed": 1})
        deadline = time.monotonic() + 300
        while client.get_study(study.id).state == pb.STUDY_ACTIVE and time.monotonic() < deadline:
            assert trainer.poll() is None, (logs / "trainer.log").read_text()
            time.sleep(0.5)
        assert client.get_study(study.id).state == pb.STUDY_COMPLETED, (logs / "trainer.log").read_text()
        texts = {f"metrics :{p}": urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=30).read()
                 for p in (opt_metrics, trainer_metrics)}
        cli_env = {**env, "SAGA_TLS_CA": str(certs.ca), "SAGA_TOKEN": CLIENT}
        for name, args in (("status", ["study", "status", study.id, "--json"]),
                           ("report", ["report", study.id, "--out", str(tmp_path / "report")])):
            done = subprocess.run([sys.executable, "-m", "saga.cli.main", *args, "--optimizer", target],
                                  capture_output=True, env=cli_env, timeout=300)
            assert done.returncode == 0, done.stderr.decode()
            texts[f"saga {name}"] = done.stdout + done.stderr
        client.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait(timeout=60)
    files = [*logs.iterdir(), *tmp_path.glob("o.db*"), *(tmp_path / "report").rglob("*")]
    texts.update({str(f): f.read_bytes() for f in files if f.is_file()})
    os.environ.update({k: env[k] for k in env if k.startswith("SAGA_S3_")})
    try:
        store = open_store("s3://secrets")
        for key in store.list(""):
            if not key.startswith("datasets/"):
                texts[f"store {key}"] = store.get_bytes(key)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert len(texts) > 8 and b"DEBUG" in (logs / "trainer.log").read_bytes()
    for secret in (WORKER, CLIENT, REFUSED, S3_ACCESS, S3_SECRET):
        leaks = [where for where, data in texts.items() if secret.encode() in data]
        assert not leaks, f"{secret[:12]}… found in {leaks}"
