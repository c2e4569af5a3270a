"""Projects (tenants) over real localhost gRPC with tokens: a client token sees and changes only
its projects' studies (another project's study is NOT_FOUND, as if absent), a study's URIs stay
inside its project's prefixes, and a worker token limited to a project leases only its trials."""
from __future__ import annotations

from pathlib import Path

import pytest

from optimizer_svc.client import OptimizerClient
from optimizer_svc.core import OptimizerCore
from optimizer_svc.errors import NotFound, PermissionDenied
from optimizer_svc.projects import Projects, ProjectsFileError
from optimizer_svc.server import make_server
from saga.security.channels import ClientSecurity
from saga.security.tokens import TokenFile, line_for, new_token

from .conftest import empty_dataset, small_spec

TOKENS = {name: new_token() for name in ("client-a", "client-b", "worker-a", "admin")}
LINES = {"client-a": (["client"], ["a"]), "client-b": (["client"], ["b"]), "worker-a": (["worker"], ["a"]),
         "admin": (["admin", "worker"], None)}


@pytest.fixture
def as_(tmp_path):
    data = str(Path(empty_dataset()))
    hashes = tmp_path / "hashes"
    hashes.write_text("".join(line_for(TOKENS[n], *LINES[n]) + "\n" for n in TOKENS))
    projects = Projects.parse({"projects": {"a": {"datasets": [data], "artifacts": [str(tmp_path / "a")]},
                                            "b": {"datasets": [data]}}})
    core = OptimizerCore(str(tmp_path / "o.db"), projects=projects)
    server, port = make_server(core, "127.0.0.1:0", tokens=TokenFile(hashes))
    server.start()
    opened = []

    def client(name: str) -> OptimizerClient:
        opened.append(OptimizerClient(f"127.0.0.1:{port}", retry_for=0, security=ClientSecurity(token=TOKENS[name])))
        return opened[-1]
    yield client
    for c in opened:
        c.close()
    server.stop(0).wait()
    core.close()


def test_a_client_sees_and_changes_only_its_projects_studies(as_):
    a, b, admin = as_("client-a"), as_("client-b"), as_("admin")
    study = a.create_study(small_spec(project="a"))
    with pytest.raises(PermissionDenied, match="only in a, not in 'b'"):
        a.create_study(small_spec(project="b"))
    with pytest.raises(PermissionDenied, match="only in b, not in 'default'"):
        b.create_study(small_spec())  # no project: 'default'
    assert [s.id for s in a.list_studies()] == [study.id] and b.list_studies() == []
    for call in (lambda: b.get_study(study.id), lambda: b.stop_study(study.id), lambda: b.list_trials(study.id),
                 lambda: b.best_trial(study.id), lambda: list(b.watch(study.id))):
        with pytest.raises(NotFound, match=f"study '{study.id}' not found"):
            call()
    assert [s.id for s in admin.list_studies()] == [study.id]
    trial, _ = admin.lease_trial("w", study_id=study.id, wait=5)
    with pytest.raises(NotFound, match="not found"):
        b.get_trial(trial.id)
    assert a.get_trial(trial.id).id == trial.id


def test_a_studys_uris_stay_inside_its_projects_prefixes(as_, tmp_path):
    a, admin = as_("client-a"), as_("admin")
    with pytest.raises(PermissionDenied, match="dataset.uri: '/etc' is outside what project 'a' may use"):
        a.create_study(small_spec(project="a", dataset={"uri": "/etc"}))
    with pytest.raises(PermissionDenied, match="artifacts_uri: .* outside"):
        a.create_study(small_spec(project="a", artifacts_uri=str(tmp_path / "a-but-not")))
    a.create_study(small_spec(project="a", artifacts_uri=str(tmp_path / "a" / "runs")))
    with pytest.raises(PermissionDenied, match="artifacts_uri: .* for artifacts \\(nowhere\\)"):
        admin.create_study(small_spec(project="b", artifacts_uri=str(tmp_path / "a")))
    with pytest.raises(PermissionDenied, match="'c' is not one of the configured projects \\(a, b\\)"):
        admin.create_study(small_spec(project="c"))


def test_a_worker_limited_to_a_project_leases_only_its_trials(as_):
    admin, worker = as_("admin"), as_("worker-a")
    other = admin.create_study(small_spec(project="b"))
    assert worker.lease_trial("w", wait=0.5) is None
    with pytest.raises(NotFound):
        worker.lease_trial("w", study_id=other.id, wait=0)
    mine = admin.create_study(small_spec(project="a"))
    trial, _ = worker.lease_trial("w", wait=5)
    assert trial.study_id == mine.id


def test_a_malformed_projects_file_is_named():
    with pytest.raises(ProjectsFileError, match="project 'a': only datasets, weights, artifacts"):
        Projects.parse({"projects": {"a": {"dataset": ["/x"]}}})
    with pytest.raises(ProjectsFileError, match="must be a list"):
        Projects.parse({"projects": {"a": {"datasets": "/x"}}})
