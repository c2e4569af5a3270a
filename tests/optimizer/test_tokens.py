"""Role tokens on the optimizer, over real localhost gRPC with TLS: each role allowed and refused
where it should be, with UNAUTHENTICATED / PERMISSION_DENIED and a message saying why; a forged
completion refused; the token file reread when it changes; `saga token new`."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from optimizer_svc.client import OptimizerClient
from optimizer_svc.core import OptimizerCore
from optimizer_svc.errors import FailedPrecondition, PermissionDenied, Unauthenticated
from optimizer_svc.server import make_server
from saga.security.channels import ClientSecurity
from saga.security.tls import ClientTLS, ServerTLS
from saga.security.tokens import TokenFile, digest, line_for, new_token, parse
from saga.v1 import optimizer_pb2 as pb

from .conftest import small_spec

TOKENS = {role: new_token() for role in ("worker", "client", "reader", "admin")}


@pytest.fixture
def optimizer(tmp_path, certs):
    hashes = tmp_path / "hashes"
    hashes.write_text("".join(line_for(t, [role]) + "\n" for role, t in TOKENS.items()))
    core = OptimizerCore(str(tmp_path / "opt.db"))
    server, port = make_server(core, "127.0.0.1:0", tls=ServerTLS(certs.server_cert, certs.server_key),
                               tokens=TokenFile(hashes))
    server.start()
    opened = []

    def client(token: str | None) -> OptimizerClient:
        c = OptimizerClient(f"localhost:{port}", retry_for=0, security=ClientSecurity(ClientTLS(certs.ca), token))
        opened.append(c)
        return c
    client.core = core
    yield client, hashes
    for c in opened:
        c.close()
    server.stop(0).wait()
    core.close()


def test_each_role_does_what_it_may_and_is_told_what_it_may_not(optimizer):
    as_, _ = optimizer
    client, worker, reader, admin = (as_(TOKENS[r]) for r in ("client", "worker", "reader", "admin"))
    with pytest.raises(PermissionDenied, match="CreateStudy needs the client or admin role; .* has worker"):
        worker.create_study(small_spec())
    study = client.create_study(small_spec())
    with pytest.raises(PermissionDenied, match="LeaseTrial needs the worker or admin role"):
        client.lease_trial("w", study_id=study.id, wait=0)
    trial, lease = worker.lease_trial("w", study_id=study.id, wait=5)
    # a forged completion: a client token, or a worker token without the lease that holds the trial
    with pytest.raises(PermissionDenied, match="CompleteTrial"):
        client.complete_trial(trial.id, lease.id, "SUCCEEDED", metrics={"val_accuracy": 1.0})
    with pytest.raises(FailedPrecondition, match="no longer holds"):
        as_(TOKENS["worker"]).complete_trial(trial.id, "forged-lease", "SUCCEEDED", metrics={"val_accuracy": 1.0})
    assert reader.get_trial(trial.id).state == pb.TRIAL_RUNNING
    assert [s.id for s in reader.list_studies()] == [study.id]
    assert reader.list_trials(study.id)[0].id == trial.id
    with pytest.raises(PermissionDenied, match="StopStudy needs the client or admin role; .* has reader"):
        reader.stop_study(study.id)
    worker.complete_trial(trial.id, lease.id, "FAILED", error="boom")
    assert admin.stop_study(study.id).state == pb.STUDY_STOPPED


def test_no_token_or_an_unknown_token_is_unauthenticated(optimizer):
    as_, _ = optimizer
    with pytest.raises(Unauthenticated, match="requires a token.*SAGA_TOKEN"):
        as_(None).list_studies()
    with pytest.raises(Unauthenticated, match="does not know this token"):
        as_("saga_made-up").list_studies()
    # refusals are counted like every other answer (saga_rpcs_total{method, code})
    assert as_.core.metrics.rpcs.labels("ListStudies", "UNAUTHENTICATED")._value.get() == 2


def test_the_token_file_is_reread_when_it_changes(optimizer):
    as_, hashes = optimizer
    fresh = new_token()
    with pytest.raises(Unauthenticated):
        as_(fresh).list_studies()
    # rotation: the worker token goes, a new reader token comes (a Secret swaps the whole file)
    lines = [line_for(t, [r]) for r, t in TOKENS.items() if r != "worker"] + [line_for(fresh, ["reader"])]
    swap = hashes.with_name("hashes.new")
    swap.write_text("\n".join(lines) + "\n")
    os.replace(swap, hashes)
    assert as_(fresh).list_studies() == []
    with pytest.raises(Unauthenticated):
        as_(TOKENS["worker"]).lease_trial("w", wait=0)
    hashes.write_text("this line is broken\n")  # a bad rewrite keeps the tokens that worked
    assert as_(fresh).list_studies() == []


def test_token_new_prints_the_token_once_and_a_line_holding_only_its_hash():
    out = subprocess.run([sys.executable, "-m", "saga.cli.main", "token", "new", "--role", "client",
                          "--role", "worker", "--projects", "kvasir"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    token = out.split("SAGA_TOKEN_FILE): ", 1)[1].split()[0]
    line = out.strip().splitlines()[-1]
    assert token not in line and digest(token) in line
    principal = parse(line)[digest(token)]
    assert principal.roles == {"client", "worker"} and principal.projects == {"kvasir"}


def test_a_client_follows_a_rotation_of_its_token_file_without_a_restart(optimizer, tmp_path, certs):
    _, hashes = optimizer
    port = optimizer[0](None).target.rsplit(":", 1)[1]
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["reader"] + "\n")
    client = OptimizerClient(f"localhost:{port}", retry_for=0,
                             security=ClientSecurity.with_token_file(ClientTLS(certs.ca), token_file))
    assert client.list_studies() == []
    fresh = new_token()
    hashes.write_text(line_for(fresh, ["reader"]) + "\n")  # the old token is revoked ...
    with pytest.raises(Unauthenticated):
        client.list_studies()
    swap = tmp_path / "token.new"
    swap.write_text(fresh + "\n")
    os.replace(swap, token_file)  # ... and the client's Secret brings the new one
    assert client.list_studies() == []
    client.close()
