"""Renders Saga's kustomizations without a cluster: a small renderer and, where installed, real kustomize.

The renderer supports exactly the kustomization fields that ``k8s/`` uses -- ``resources`` (files and
directories), ``components``, ``namespace``, ``labels`` (pairs, without selectors), ``images``,
``replicas`` and ``patches`` given as JSON 6902 operations with a target or as a strategic-merge
``$patch: delete`` of one object -- and refuses any other field, so a new feature cannot be silently
skipped. ``tests/deploy/test_kustomize.py`` checks that it renders the same
objects as ``kustomize build`` / ``kubectl kustomize`` wherever one of those is installed.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

Object = dict[str, Any]

SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "components", "namespace", "labels", "images", "replicas",
                    "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition", "PriorityClass", "IngressClass"}
SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}


class UnsupportedKustomization(ValueError):
    """The kustomization uses something this renderer does not implement; the message names it."""


def render(directory: Path) -> list[Object]:
    """The objects ``kustomize build directory`` would produce (order not guaranteed)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise UnsupportedKustomization(f"{directory}/kustomization.yaml: unsupported fields {sorted(unknown)}")
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += render(path)
        else:
            objects += _load(path)
    # A component adds its resources and applies its patches to everything gathered so far, before
    # the kustomization's own transformations.
    for entry in kustomization.get("components", []):
        component = yaml.safe_load((directory / entry / "kustomization.yaml").read_text())
        if component.get("kind") != "Component" or set(component) - {"apiVersion", "kind", "resources", "patches"}:
            raise UnsupportedKustomization(f"{entry}: only a Component with resources and patches")
        for resource in component.get("resources", []):
            objects += _load(directory / entry / resource)
        for patch in component.get("patches", []):
            objects = _apply_patch(directory / entry, patch, objects)
    for patch in kustomization.get("patches", []):
        objects = _apply_patch(directory, patch, objects)
    for replicas in kustomization.get("replicas", []):
        for obj in objects:
            if obj["kind"] in SCALABLE and obj["metadata"]["name"] == replicas["name"]:
                obj["spec"]["replicas"] = replicas["count"]
    for image in kustomization.get("images", []):
        for container in (c for obj in objects for c in containers(obj)):
            _set_image(container, image)
    for labels in kustomization.get("labels", []):
        if labels.get("includeSelectors") or labels.get("includeTemplates"):
            raise UnsupportedKustomization("labels with includeSelectors/includeTemplates")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(labels["pairs"])
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def _load(path: Path) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _apply_patch(directory: Path, patch: Object, objects: list[Object]) -> list[Object]:
    if set(patch) == {"path"}:
        return _delete(directory / patch["path"], objects)
    if set(patch) != {"path", "target"}:
        raise UnsupportedKustomization(f"patch {patch}: only `path` + `target` is supported")
    operations = yaml.safe_load((directory / patch["path"]).read_text())
    if not isinstance(operations, list):
        raise UnsupportedKustomization(f"{patch['path']}: only JSON 6902 patches (a list of operations)")
    target = patch["target"]
    matched = [i for i, obj in enumerate(objects) if _matches(obj, target)]
    if not matched:
        raise UnsupportedKustomization(f"{patch['path']}: target {target} matches no object")
    result = list(objects)
    for i in matched:
        result[i] = jsonpatch.apply_patch(objects[i], operations)
    return result


def _delete(path: Path, objects: list[Object]) -> list[Object]:
    """A strategic-merge patch that deletes one object: ``$patch: delete`` with its apiVersion, kind, name."""
    patch = yaml.safe_load(path.read_text())
    if not isinstance(patch, dict) or patch.get("$patch") != "delete" or set(patch) - {"$patch", "apiVersion",
                                                                                        "kind", "metadata"}:
        raise UnsupportedKustomization(f"{path.name}: of strategic-merge patches only `$patch: delete` is supported")
    def same(obj: Object) -> bool:
        return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) == (
            patch["apiVersion"], patch["kind"], patch["metadata"]["name"]) and obj["metadata"].get(
            "namespace", patch["metadata"].get("namespace")) == patch["metadata"].get("namespace")
    kept = [obj for obj in objects if not same(obj)]
    if len(kept) == len(objects):
        raise UnsupportedKustomization(f"{path.name}: deletes an object that does not exist")
    return kept


def _matches(obj: Object, target: Object) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    wanted = {"group": group, "version": version, "kind": obj["kind"], "name": obj["metadata"]["name"]}
    unknown = set(target) - set(wanted)
    if unknown:
        raise UnsupportedKustomization(f"patch target fields {sorted(unknown)}")
    return all(wanted[key] == value for key, value in target.items())


def pod_spec(obj: Object) -> Object | None:
    """The pod spec inside a workload object, or None for objects without pods."""
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    template = obj.get("spec", {}).get("template") if isinstance(obj.get("spec"), dict) else None
    return template.get("spec") if isinstance(template, dict) else None


def containers(obj: Object) -> list[Object]:
    """Every container and init container of a workload object."""
    spec = pod_spec(obj)
    return [] if spec is None else spec.get("initContainers", []) + spec.get("containers", [])


_IMAGE = re.compile(r"^(?P<name>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` -> (name, tag, digest); a registry port is part of the name."""
    match = _IMAGE.match(reference)
    if not match:
        raise ValueError(f"not an image reference: {reference!r}")
    return match["name"], match["tag"], match["digest"]


def _set_image(container: Object, image: Object) -> None:
    name, tag, digest = split_image(container["image"])
    if name != image["name"]:
        return
    name = image.get("newName", name)
    tag = image.get("newTag", tag)
    digest = image.get("digest", digest)
    container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def kustomize_command() -> list[str] | None:
    """A real kustomize (standalone, or kubectl's built-in v4.5+), or None when none is installed."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        try:
            out = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True,
                                 text=True, timeout=30, check=True).stdout
            version = json.loads(out).get("kustomizeVersion", "")
        except (subprocess.SubprocessError, OSError, json.JSONDecodeError):
            return None
        match = re.match(r"v(\d+)\.(\d+)", version)
        # Older kubectl (e.g. Debian's 1.20, kustomize v2) lacks the `labels` and `replicas` fields.
        if match and (int(match[1]), int(match[2])) >= (4, 5):
            return ["kubectl", "kustomize"]
    return None


def render_with_kustomize(command: list[str], directory: Path) -> list[Object]:
    """The objects of ``kustomize build directory`` from a real kustomize binary."""
    out = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} {directory} failed: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_key(objects: list[Object]) -> dict[tuple[str, str, str], Object]:
    """Objects indexed by (kind, namespace, name); a duplicate is an error, as in kustomize."""
    index: dict[tuple[str, str, str], Object] = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if key in index:
            raise ValueError(f"duplicate object {key}")
        index[key] = copy.deepcopy(obj)
    return index
