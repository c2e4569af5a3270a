"""Lookups over rendered Kubernetes objects, shared by the manifest tests."""
from __future__ import annotations

from typing import Any

from .kustomize import containers, pod_spec

Object = dict[str, Any]

# API groups of the custom resources k8s/ uses; their schemas are in tests/deploy/crds.
CUSTOM_GROUPS = ("kueue.x-k8s.io", "keda.sh", "monitoring.coreos.com")


def is_custom(obj: Object) -> bool:
    return obj["apiVersion"].split("/")[0] in CUSTOM_GROUPS


def workloads(objects: list[Object]) -> list[Object]:
    """Objects that run pods (Deployments, StatefulSets, Jobs, Pods)."""
    return [obj for obj in objects if not is_custom(obj) and pod_spec(obj) is not None]


def pod_labels(obj: Object) -> dict[str, str]:
    if obj["kind"] == "Pod":
        return obj["metadata"].get("labels", {})
    return obj["spec"]["template"]["metadata"].get("labels", {})


def one(objects: list[Object], kind: str, name: str) -> Object:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects ``labels``."""
    if set(selector) - {"matchLabels", "matchExpressions"}:
        raise AssertionError(f"selector {selector}: unknown fields")
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if op == "In" and value not in expr["values"] or op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and value is None or op == "DoesNotExist" and value is not None:
            return False
    return True


def ports(obj: Object) -> dict[object, int]:
    """containerPort numbers of a workload, by number and by name."""
    found: dict[object, int] = {}
    for container in containers(obj):
        for port in container.get("ports", []):
            found[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                found[port["name"]] = port["containerPort"]
    return found


def trainer_workload(objects: list[Object]) -> Object:
    """The trainers: a Deployment, or the Job of overlays/kueue."""
    found = [o for o in workloads(objects) if o["kind"] in ("Deployment", "Job") and o["metadata"]["name"] == "trainer"]
    assert len(found) == 1, f"expected one trainer workload, found {len(found)}"
    return found[0]


_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
          "m": 10**-3}


def quantity(text: object) -> float:
    """A Kubernetes quantity (``100Gi``, ``500m``, ``2``) as a number."""
    text = str(text)
    number = text.rstrip("kMGTmi")
    return float(number) * _UNITS[text[len(number):]]


def example_secrets() -> dict[str, dict[str, str]]:
    """Every Secret of k8s/secret.example.yaml with made-up hex values: what an operator creates."""
    import secrets as random
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[2] / "k8s" / "secret.example.yaml"
    return {doc["metadata"]["name"]: {key: random.token_hex(16) for key in doc["stringData"]}
            for doc in yaml.safe_load_all(path.read_text()) if doc}


def flag(args: list[str], name: str) -> str | None:
    """The value of ``name`` in container args, written ``--name value`` or ``--name=value``."""
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
