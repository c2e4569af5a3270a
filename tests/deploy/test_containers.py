"""The real images, run the way the rendered manifests run them, drive a small study end to end.

From overlays/dev (the CPU overlay) and k8s/saga-cli.yaml: the optimizer container, two trainer
containers, the TF Serving pod's serving-sync sidecar with `saga serve` standing in for TF Serving's
container (same user, volumes, ports and model flags; TF Serving has no package to install here) and
overlays/gpu's gateway that puts TLS and tokens in front of it, the saga-cli pod for the user's commands (`saga data`, `saga study`, `saga export`, `saga classify`), and
an S3 server (moto, a test dependency) in a pod reachable as `minio`. Each pod is a podman pod on an
internal network (tests/deploy/cluster.py). The study completes, its best trial is exported, the
sidecar copies the version, the pod turns ready, and the exported model answers a Predict, directly
and through the gateway (with the CA and a token; refused without the token).

Skipped, with the reason, where podman cannot run here or the images are not built (`make test`
builds them first; `make images` by hand). Images built from another tree than this one fail the test.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

from saga.security.tokens import line_for, new_token
from tests.certs import make_certs

from .cluster import Cluster, stale_images, unavailable
from .conftest import K8S
from .kustomize import pod_spec
from .objects import example_secrets, one, trainer_workload
from .pods import ContainerRun, container_run

# A progressing run is never cut short by the suite's 600 s per-test limit: each wait below fails on
# its own, early, when a container stops, and late only when nothing progresses.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

TARGETS = ("optimizer", "trainer-cpu", "serving-sync", "tools")
WHY_NOT = unavailable(TARGETS)
# Keys made up per run: the Secrets are created out of band (k8s/secret.example.yaml).
SECRETS = example_secrets()
STUDY = {
    "name": "containers",
    "dataset": {"uri": "s3://saga/datasets/tiny"},
    "model": {"weights": None, "image_size": 32},
    "strategy": "joint",  # the GP engine: its proposals run in processes the optimizer starts
    "search_space": {"backbone": {"type": "categorical", "values": ["MobileNetV2"]},
                     "optimizer": {"type": "categorical", "values": ["Adam"]},
                     "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "scale": "log"}},
    "budget": {"trials_per_phase": 2, "initial_points": 2, "parallel_trials": 2, "max_attempts": 2},
    "training": {"head_epochs": 1, "finetune_epochs": 1, "batch_size": 8},
    "seed": 1,
}


def _volumes(cluster: Cluster, pod: str, run: ContainerRun, objects: list) -> dict[str, Path]:
    return {m.volume: cluster.volume_dir(pod, run, m.volume, one(objects, "ConfigMap", m.source)["data"]
                                         if m.kind == "configMap" else None) for m in run.mounts}


def _tf_serving_stand_in(run: ContainerRun) -> list[str]:
    """`saga serve` with TF Serving's own flags from the manifest: ports, model name, base path."""
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in run.args)
    base, name = flags["model_base_path"].rsplit("/", 1)
    assert name == flags["model_name"]
    return ["saga", "serve", "--model-base", base, "--model-name", name, "--grpc-port", flags["port"],
            "--rest-port", flags["rest_api_port"], "--metrics-port", "-1"]


def _ok(result, what: str) -> str:
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
def test_a_study_runs_through_the_real_images_as_the_manifests_run_them(rendered, tmp_path: Path) -> None:
    assert not stale_images(TARGETS), f"images older than this tree, run `make images`: {stale_images(TARGETS)}"
    objects = rendered["overlays/dev"]
    config = one(objects, "ConfigMap", "saga-config")["data"]
    cluster = Cluster(tmp_path)
    started = time.monotonic()
    try:
        # The object store, where the Service `minio` points: moto in the pod's network namespace.
        minio = cluster.pod("minio", aliases=("minio",))
        port = config["SAGA_S3_ENDPOINT"].rsplit(":", 1)[1]
        cluster.in_pod_network(minio, [sys.executable, "-m", "moto.server", "-H", "0.0.0.0", "-p", port],
                               tmp_path / "moto.log")

        # The optimizer, then two trainers (each its own pod, as the Deployment's replicas are).
        optimizer_obj = one(objects, "Deployment", "optimizer")
        optimizer_run = container_run(optimizer_obj, "optimizer", objects, SECRETS)
        optimizer_pod = cluster.pod("optimizer", aliases=("optimizer",))
        optimizer = cluster.start(optimizer_pod, optimizer_run, _volumes(cluster, optimizer_pod, optimizer_run, objects))
        trainer_obj = trainer_workload(objects)
        trainers, trainer_volumes = [], []
        for i in range(2):
            run = container_run(trainer_obj, "trainer", objects, SECRETS)
            pod = cluster.pod(f"trainer-{i}")
            volumes = _volumes(cluster, pod, run, objects)
            trainers.append(cluster.start(pod, run, volumes))
            trainer_volumes.append(volumes)

        # TF Serving's pod: `saga serve` in TF Serving's place, and the real sync sidecar.
        tfserving_obj = one(objects, "Deployment", "tfserving")
        serving_pod = cluster.pod("tfserving", aliases=("tfserving",))
        serving_run = container_run(tfserving_obj, "tfserving", objects, SECRETS)
        sync_run = container_run(tfserving_obj, "serving-sync", objects, SECRETS)
        serving_volumes = {**_volumes(cluster, serving_pod, serving_run, objects),
                           **_volumes(cluster, serving_pod, sync_run, objects)}
        serving = cluster.start(serving_pod, serving_run, serving_volumes, image=cluster.target_image("tools"),
                                argv=_tf_serving_stand_in(serving_run))
        sync = cluster.start(serving_pod, sync_run, serving_volumes)
        # The production overlays' gateway (TLS and tokens in front of TF Serving), as overlays/gpu
        # runs it, with its Secrets' files: a certificate for the Service's name and a token's hash.
        gpu = rendered["overlays/gpu"]
        gateway_run = container_run(one(gpu, "Deployment", "tfserving"), "gateway", gpu, SECRETS)
        gateway_volumes = {m.volume: cluster.volume_dir(serving_pod, gateway_run, f"gateway-{m.volume}")
                           for m in gateway_run.mounts}
        certs = make_certs(tmp_path / "certs", hosts=("tfserving",))
        (gateway_volumes["serving-tls"] / "tls.crt").write_bytes(certs.server_cert.read_bytes())
        (gateway_volumes["serving-tls"] / "tls.key").write_bytes(certs.server_key.read_bytes())
        token = new_token()
        (gateway_volumes["tokens"] / "hashes").write_text(line_for(token, ["reader"]) + "\n")
        for volume in gateway_volumes.values():
            for f in volume.iterdir():
                f.chmod(0o644)  # as a Secret's files: readable by the container's user
        gateway = cluster.start(serving_pod, gateway_run, gateway_volumes)

        # The user's pod: k8s/saga-cli.yaml, with the overlay's ConfigMap.
        cli_manifest = yaml.safe_load((K8S / "saga-cli.yaml").read_text())
        cli_run = container_run(cli_manifest, "saga", objects, SECRETS)
        cli_pod = cluster.pod("saga-cli")
        cli_volumes = _volumes(cluster, cli_pod, cli_run, objects)
        cli = cluster.start(cli_pod, cli_run, cli_volumes)

        # The optimizer's image health check: the gRPC health service answers SERVING.
        cluster.wait_for("optimizer SERVING", lambda: cluster.podman("healthcheck", "run", optimizer, check=False)
                         .returncode == 0, timeout=600, alive=(optimizer,))
        print(f"optimizer SERVING after {time.monotonic() - started:.0f}s", flush=True)
        _ok(cluster.exec(cli, ["saga", "data", "synth", "/work/tiny", "--classes", "2", "--per-class", "16",
                               "--size", "32"]), "saga data synth")
        _ok(cluster.exec(cli, ["saga", "data", "upload", "/work/tiny", STUDY["dataset"]["uri"]]), "saga data upload")
        spec = cli_volumes["work"] / "study.yaml"
        spec.write_text(yaml.safe_dump(STUDY))
        created = _ok(cluster.exec(cli, ["saga", "study", "create", "/work/study.yaml"]), "saga study create")
        study_id = re.search(r"\bst-[0-9a-f]+\b", created)[0]

        def study() -> dict:
            return json.loads(_ok(cluster.exec(cli, ["saga", "study", "status", study_id, "--json"]), "status"))

        print(f"study created after {time.monotonic() - started:.0f}s", flush=True)
        cluster.wait_for(f"study {study_id} to finish", lambda: study()["study"]["state"] != "STUDY_ACTIVE",
                         timeout=1800, alive=(optimizer, *trainers, serving, sync), every=5)
        print(f"study finished after {time.monotonic() - started:.0f}s", flush=True)
        status = study()
        assert status["study"]["state"] == "STUDY_COMPLETED", json.dumps(status, indent=1) + cluster.all_logs()
        trials = json.loads(_ok(cluster.exec(cli, ["python", "-c", _LIST_TRIALS, study_id]), "list trials"))
        assert len(trials) == 2 and {t["state"] for t in trials} <= {"SUCCEEDED", "STOPPED_EARLY"}, trials
        assert len({t["worker"] for t in trials}) == 2, f"both trainers trained: {trials}"

        # Work directories are removed when an attempt ends: the trainers' caches hold data only.
        for volumes in trainer_volumes:
            work = volumes["cache"] / "work"
            assert work.is_dir() and not any(work.iterdir()), sorted(p.name for p in work.rglob("*"))

        # Export from the user's pod; the sidecar copies the version, and the pod turns ready.
        model = config["MODEL_NAME"]
        _ok(cluster.exec(cli, ["saga", "export", study_id, "--model-name", model, "--to", config["SAGA_MODEL_BASE"]]),
            "saga export")
        sync_port = next(p["containerPort"] for p in pod_spec(tfserving_obj)["containers"][1]["ports"])
        ready = ["python", "-c", "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)",
                 f"http://tfserving:{sync_port}/ready"]
        cluster.wait_for("the TF Serving pod's readiness (/ready)", lambda: cluster.exec(cli, ready).returncode == 0,
                         timeout=600, alive=(serving, sync))
        assert (serving_volumes["models"] / model / "1" / "saved_model.pb").is_file()

        # A Predict through the official client, from the user's pod, to the Service's gRPC port.
        image = next((cli_volumes["work"] / "tiny").rglob("*.png"), None) or next((cli_volumes["work"] / "tiny").rglob("*.jpg"))
        classified = _ok(cluster.exec(cli, ["saga", "classify", f"/work/{image.relative_to(cli_volumes['work'])}",
                                            "--server", "tfserving:8500", "--model", model]), "saga classify")
        assert "frames: 1  failures: 0" in classified, classified
        classes = {p.name for p in (cli_volumes["work"] / "tiny").iterdir() if p.is_dir()}
        assert any(f"{c}=" in classified for c in classes), classified

        # The same Predict through the gateway: TLS to the Service's name with the CA, and a token.
        (cli_volumes["work"] / "ca.crt").write_bytes(certs.ca.read_bytes())
        (cli_volumes["work"] / "token").write_text(token)
        gateway_grpc = next(p["containerPort"] for p in gateway_run_ports(gpu) if p["name"] == "gateway-grpc")
        classify = ["saga", "classify", f"/work/{image.relative_to(cli_volumes['work'])}",
                    "--server", f"tfserving:{gateway_grpc}", "--model", model, "--tls-ca", "/work/ca.crt"]
        through = _ok(cluster.exec(cli, [*classify, "--token-file", "/work/token"]), "saga classify through the gateway")
        assert "frames: 1  failures: 0" in through and any(f"{c}=" in through for c in classes), through
        refused = cluster.exec(cli, classify)  # no token
        assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stdout + refused.stderr, refused

        print(f"Predict answered after {time.monotonic() - started:.0f}s", flush=True)
        # Nothing crashed on the read-only roots along the way.
        for container in (optimizer, *trainers, serving, sync, gateway, cli):
            assert cluster.running(container), cluster.logs(container)
        optimizer_log = cluster.logs(optimizer, tail=100_000)
        for failed in ("cannot run proposals in a process", "proposal process ended unexpectedly"):
            assert failed not in optimizer_log, optimizer_log
    finally:
        cluster.close()


def gateway_run_ports(objects: list) -> list[dict]:
    return next(c for c in pod_spec(one(objects, "Deployment", "tfserving"))["containers"]
                if c["name"] == "gateway")["ports"]


# Trials with their state and worker, as JSON (run in the tools image, which has the client).
_LIST_TRIALS = """
import json, os, sys
from optimizer_svc.client import OptimizerClient
from saga.v1.optimizer_pb2 import TrialState
with OptimizerClient(os.environ["SAGA_OPTIMIZER"]) as c:
    print(json.dumps([{"id": t.id, "state": TrialState.Name(t.state).removeprefix("TRIAL_"), "worker": t.worker_id}
                      for t in c.list_trials(sys.argv[1])]))
"""
