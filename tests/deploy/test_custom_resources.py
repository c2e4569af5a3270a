"""The Kueue, KEDA and Prometheus Operator objects: schema-valid offline, and wired to what they name.

Schemas: tests/deploy/crds (CRD format, every object closed: an unknown field is an error).
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from prometheus_client import generate_latest

from optimizer_svc.core import OptimizerCore
from saga.cli.trainer import EXIT_INTERRUPTED

from .conftest import KUSTOMIZATIONS
from .kustomize import containers, pod_spec
from .objects import Object, is_custom, one, pod_labels, ports, quantity, selects, trainer_workload, workloads

CRDS = Path(__file__).parent / "crds"


def _strict(schema: dict) -> dict:
    """A CRD's structural schema as JSON Schema, every object with properties closed."""
    schema = dict(schema)
    if schema.pop("x-kubernetes-int-or-string", False):
        schema = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    preserve = schema.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in schema:
        schema["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if not preserve and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = _strict(schema["additionalProperties"])
    if "items" in schema:
        schema["items"] = _strict(schema["items"])
    return schema


def _load_schemas() -> dict[tuple[str, str], tuple[str, dict]]:
    """(apiVersion, kind) -> (scope, JSON Schema)."""
    found = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                found[key] = (spec["scope"], _strict(version["schema"]["openAPIV3Schema"]))
    return found


SCHEMAS = _load_schemas()


def validate(obj: Object) -> None:
    """Raises jsonschema.ValidationError naming the path of the first bad field."""
    key = (obj["apiVersion"], obj["kind"])
    assert key in SCHEMAS, f"no schema for {key} in {CRDS}"
    jsonschema.validate(obj, SCHEMAS[key][1])


def _custom(objects: list[Object], kind: str) -> list[Object]:
    return [o for o in objects if is_custom(o) and o["kind"] == kind]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_custom_resource_is_valid_and_scoped_as_its_kind_is(rendered, name: str) -> None:
    for obj in (o for o in rendered[name] if is_custom(o)):
        validate(obj)
        scope = SCHEMAS[(obj["apiVersion"], obj["kind"])][0]
        namespace = obj["metadata"].get("namespace")
        assert (namespace is None) == (scope == "Cluster"), f"{obj['kind']}/{obj['metadata']['name']}: {namespace}"


@pytest.mark.parametrize("kind, path, value", [
    ("ClusterQueue", ["spec", "resourceGroup"], []),                        # misspelt: resourceGroups
    ("ClusterQueue", ["spec", "queueingStrategy"], "FIFO"),                 # not an allowed value
    ("LocalQueue", ["spec", "clusterQueu"], "saga"),
    ("ScaledObject", ["spec", "triggers", 0, "metadata", "threshold"], 1),  # must be the string "1"
    ("ScaledObject", ["spec", "maxReplicas"], 4),                           # KEDA calls it maxReplicaCount
    ("PodMonitor", ["spec", "podMetricsEndpoints", 0, "interval"], "15"),   # needs a unit
])
def test_the_schemas_refuse_what_a_cluster_would_refuse(rendered, kind: str, path: list, value: object) -> None:
    objects = rendered["overlays/kueue"] + rendered["overlays/keda"]
    broken = copy.deepcopy(_custom(objects, kind)[0])
    validate(broken)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


# ------------------------------------------------------------------------------------------ Kueue
def test_the_trainer_job_is_queued_suspended_and_admissible(rendered) -> None:
    objects = rendered["overlays/kueue"]
    job = trainer_workload(objects)
    assert job["kind"] == "Job" and job["spec"]["suspend"] is True  # Kueue unsuspends it on admission
    assert not [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "trainer"]
    queue_name = job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
    local = one(objects, "LocalQueue", queue_name)
    assert local["metadata"]["namespace"] == job["metadata"]["namespace"]
    cluster_queue = one(objects, "ClusterQueue", local["spec"]["clusterQueue"])["spec"]
    namespace = one(objects, "Namespace", job["metadata"]["namespace"])
    labels = {**namespace["metadata"].get("labels", {}),
              "kubernetes.io/metadata.name": namespace["metadata"]["name"]}  # set by Kubernetes itself
    assert selects(cluster_queue["namespaceSelector"], labels)

    # Kueue admits a pod only if the queue covers every resource it requests, in a flavor that exists,
    # with quota for at least one worker.
    requests: dict[str, float] = {}
    for container in containers(job):
        for resource, amount in container["resources"]["requests"].items():
            requests[resource] = requests.get(resource, 0) + quantity(amount)
    group = next(g for g in cluster_queue["resourceGroups"] if "nvidia.com/gpu" in g["coveredResources"])
    assert set(requests) <= set(group["coveredResources"])
    for flavor in group["flavors"]:
        node_labels = one(objects, "ResourceFlavor", flavor["name"])["spec"]["nodeLabels"]
        assert pod_spec(job)["nodeSelector"].items() >= node_labels.items()  # the pods may run there
        quota = {r["name"]: quantity(r["nominalQuota"]) for r in flavor["resources"]}
        assert all(quota[r] >= amount for r, amount in requests.items()), (quota, requests)


def test_preemption_hands_trials_back_without_failing_the_job(rendered) -> None:
    job = trainer_workload(rendered["overlays/kueue"])
    spec = job["spec"]
    assert "completions" not in spec and spec["parallelism"] >= 1  # a work queue: done when workers exit 0
    assert pod_spec(job)["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    ignored_conditions = {c["type"] for r in rules if r["action"] == "Ignore" for c in r.get("onPodConditions", [])}
    assert "DisruptionTarget" in ignored_conditions  # preempted, evicted, drained
    ignored_codes = {code for r in rules if r["action"] == "Ignore" and "onExitCodes" in r
                     for code in r["onExitCodes"]["values"] if r["onExitCodes"]["operator"] == "In"}
    assert EXIT_INTERRUPTED in ignored_codes  # what `saga trainer --exit-when-done` exits with on SIGTERM
    assert "--exit-when-done" in containers(job)[0]["args"]
    assert pod_spec(job)["terminationGracePeriodSeconds"] >= 60  # time to hand the trial back


def test_the_job_runs_the_trainer_deployment_pod(rendered) -> None:
    """The Job's pod template is written out; it must not drift from the Deployment's."""
    deployment = trainer_workload(rendered["overlays/gpu"])["spec"]["template"]
    job = copy.deepcopy(trainer_workload(rendered["overlays/kueue"])["spec"]["template"])
    assert job["spec"].pop("restartPolicy") == "Never"
    container = job["spec"]["containers"][0]
    assert container["args"].pop() == "--exit-when-done"
    assert container["env"].pop() == {"name": "SAGA_STUDY", "value": ""}
    assert job == deployment


# ------------------------------------------------------------------------------------------ KEDA
def _exported_metric_names(tmp_path: Path) -> set[str]:
    core = OptimizerCore(str(tmp_path / "metrics.db"))
    try:
        text = generate_latest(core.metrics.registry).decode()
    finally:
        core.close()
    return set(re.findall(r"^# TYPE (\w+)", text, re.M))


def test_the_scaled_object_scales_the_trainers_on_a_metric_the_optimizer_exports(rendered, tmp_path) -> None:
    objects = rendered["overlays/keda"]
    scaled = one(objects, "ScaledObject", "trainer")["spec"]
    target = scaled["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", trainer_workload(objects)["metadata"]["name"])
    assert scaled["minReplicaCount"] == 0  # no study, no GPU held
    trigger = next(t for t in scaled["triggers"] if t["type"] == "prometheus")["metadata"]
    assert set(re.findall(r"saga_\w+", trigger["query"])) <= _exported_metric_names(tmp_path)

    match = re.fullmatch(r"http://(\w[\w-]*)\.(\w[\w-]*)\.svc:(\d+)", trigger["serverAddress"])
    assert match, trigger["serverAddress"]
    service = one(objects, "Service", match[1])
    assert service["metadata"]["namespace"] == match[2]
    assert int(match[3]) in [p["port"] for p in service["spec"]["ports"]]
    prometheus = [w for w in workloads(objects) if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(w))]
    admitted = [p for p in objects if p["kind"] == "NetworkPolicy" and any(selects(p["spec"]["podSelector"], pod_labels(w))
                                                                          for w in prometheus)
                and any("keda" in yaml.safe_dump(rule.get("from", [])) for rule in p["spec"].get("ingress", []))]
    assert admitted, "no NetworkPolicy admits KEDA's operator to Prometheus"


# ------------------------------------------------------------------------------------------ monitors
@pytest.mark.parametrize("name", ["overlays/keda", "overlays/kueue"])
def test_every_monitor_selects_a_target_with_its_port(rendered, name: str) -> None:
    objects = rendered[name]
    for monitor in _custom(objects, "ServiceMonitor"):
        services = [s for s in objects if s["kind"] == "Service"
                    and selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        assert len(services) == 1, f"ServiceMonitor {monitor['metadata']['name']} selects {len(services)} Services"
        names = {p.get("name") for p in services[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= names
    for monitor in _custom(objects, "PodMonitor"):
        pods = [w for w in workloads(objects) if selects(monitor["spec"]["selector"], pod_labels(w))]
        assert pods, f"PodMonitor {monitor['metadata']['name']} selects no pod"
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert all(endpoint["port"] in ports(p) for p in pods), endpoint
