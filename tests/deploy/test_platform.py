"""What a platform team expects of the manifests: disruption budgets, disk requests, GPU-safe
rollouts, storage classes chosen per overlay, a demand-sized or queued trainer fleet."""
from __future__ import annotations

import pytest
import yaml

from .conftest import K8S, KUSTOMIZATIONS
from .kustomize import containers, pod_spec
from .objects import Object, one, pod_labels, quantity, selects, workloads


def _scratch_bytes(spec: Object) -> float:
    """What the pod's disk-backed emptyDirs may hold (a memory-backed one counts against memory)."""
    return sum(quantity(v["emptyDir"].get("sizeLimit", 0)) for v in spec.get("volumes", [])
               if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory")


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_pods_request_the_disk_their_scratch_volumes_may_fill(rendered, name: str) -> None:
    """Without ephemeral-storage requests a pod with a 100 GiB emptyDir lands on any node and is
    evicted when the node's disk fills; with them the scheduler picks a node that has the space."""
    for obj in workloads(rendered[name]):
        spec = pod_spec(obj)
        for kind in ("requests", "limits"):
            total = sum(quantity(c["resources"].get(kind, {}).get("ephemeral-storage", 0)) for c in containers(obj))
            assert total >= _scratch_bytes(spec), f"{obj['metadata']['name']}: ephemeral-storage {kind}"


def test_the_cli_pod_requests_its_scratch_space_too() -> None:
    pod = yaml.safe_load((K8S / "saga-cli.yaml").read_text())
    requested = sum(quantity(c["resources"]["requests"]["ephemeral-storage"]) for c in pod["spec"]["containers"])
    assert requested >= _scratch_bytes(pod["spec"])


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_replicated_workloads_have_a_disruption_budget_that_lets_a_drain_proceed(rendered, name: str) -> None:
    objects = rendered[name]
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for obj in workloads(objects):
        if obj["kind"] not in ("Deployment", "Job") or obj["metadata"]["name"] not in ("trainer", "tfserving"):
            continue
        mine = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(obj))]
        assert len(mine) == 1, f"{obj['metadata']['name']}: {len(mine)} disruption budgets"
        spec = mine[0]["spec"]
        # A budget that allows no disruption at all would block every node drain.
        assert spec.get("maxUnavailable", 0) >= 1 or quantity(spec.get("minAvailable", 0)) < obj["spec"].get(
            "replicas", obj["spec"].get("parallelism", 1))


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_a_rollout_never_waits_for_a_spare_gpu(rendered, name: str) -> None:
    for obj in (o for o in workloads(rendered[name]) if o["kind"] == "Deployment"):
        wants_gpu = any("nvidia.com/gpu" in c["resources"].get("limits", {}) for c in containers(obj))
        if wants_gpu:
            strategy = obj["spec"]["strategy"]
            assert strategy["type"] == "Recreate" or strategy["rollingUpdate"]["maxSurge"] == 0, obj["metadata"]["name"]


def test_storage_classes_are_chosen_by_the_overlays_not_the_base(rendered) -> None:
    def claims(objects: list[Object]) -> list[Object]:
        found = [o["spec"] for o in objects if o["kind"] == "PersistentVolumeClaim"]
        return found + [t["spec"] for o in objects if o["kind"] == "StatefulSet"
                        for t in o["spec"].get("volumeClaimTemplates", [])]

    assert not [c for c in claims(rendered["base"]) if "storageClassName" in c]  # the cluster's default
    assert all(c.get("storageClassName") for c in claims(rendered["overlays/gpu"]))
    assert len(claims(rendered["overlays/gpu"])) == 2  # the optimizer's database and MinIO's data


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_cluster_refuses_imagenet_at_creation_because_trainers_have_no_egress(rendered, name: str) -> None:
    """The trainer NetworkPolicy allows no internet, so the optimizer is told (SAGA_OFFLINE) and
    refuses `weights: imagenet` with what to do instead, rather than failing trials later."""
    objects = rendered[name]
    config = one(objects, "ConfigMap", "saga-config")["data"]
    assert config["SAGA_OFFLINE"] == "true"
    trainer_policy = one(objects, "NetworkPolicy", "trainer")["spec"]
    assert "Egress" in trainer_policy["policyTypes"]
    assert all(peer.get("podSelector") for rule in trainer_policy["egress"] for peer in rule["to"])  # pods only
    optimizer = one(objects, "Deployment", "optimizer")
    assert {"configMapRef": {"name": "saga-config"}} in containers(optimizer)[0]["envFrom"]
