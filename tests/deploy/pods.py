"""A container of a rendered manifest as the kubelet would run it: command, arguments, environment
(ConfigMaps, Secrets, $(VAR) expansion), user, volumes, security settings.

The manifest tests check it offline (test_runtime_paths.py); the container test runs exactly it with
podman (test_containers.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .kustomize import pod_spec, split_image
from .objects import Object, one

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ is a literal $, others stay."""
    def replace(match: re.Match) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])
    return _VAR.sub(replace, text)


@dataclass(frozen=True)
class Mount:
    volume: str
    path: str
    read_only: bool
    kind: str          # emptyDir, persistentVolumeClaim, configMap, secret
    source: str = ""   # the ConfigMap's, Secret's or claim's name


@dataclass
class ContainerRun:
    name: str
    image: str                      # as the manifest names it
    command: list[str] | None       # None: the image's entrypoint
    args: list[str] | None          # None: the image's CMD
    env: dict[str, str]
    user: int
    group: int
    fs_group: int | None
    workdir: str | None
    mounts: list[Mount] = field(default_factory=list)
    read_only_root: bool = False
    capabilities_dropped: list[str] = field(default_factory=list)
    no_new_privileges: bool = False

    @property
    def image_name(self) -> str:
        """The image's name without registry and tag: ``saga-trainer-cpu``."""
        return split_image(self.image)[0].rsplit("/", 1)[-1]

    def writable_mount(self, path: str) -> Mount | None:
        """The writable volume that holds ``path`` (the deepest mount), or None."""
        path = PurePosixPath(path)
        holding = [m for m in self.mounts if path == PurePosixPath(m.path) or PurePosixPath(m.path) in path.parents]
        if not holding:
            return None
        deepest = max(holding, key=lambda m: len(m.path))
        writable = not deepest.read_only and deepest.kind in ("emptyDir", "persistentVolumeClaim")
        return deepest if writable else None


def container_run(obj: Object, container: str, objects: list[Object],
                  secrets: dict[str, dict[str, str]]) -> ContainerRun:
    """The container named ``container`` of workload ``obj``; ``secrets`` holds the Secrets' data
    (they are created out of band, never rendered)."""
    spec = pod_spec(obj)
    c = next(x for x in spec.get("initContainers", []) + spec["containers"] if x["name"] == container)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one(objects, "ConfigMap", source["configMapRef"]["name"]).get("data", {}))
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for entry in c.get("env", []):
        if "value" in entry:
            env[entry["name"]] = expand(entry["value"], env)
        elif "secretKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            ref = entry["valueFrom"]["configMapKeyRef"]
            env[entry["name"]] = one(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for claim in obj["spec"].get("volumeClaimTemplates", []):  # a StatefulSet's own claims
        volumes[claim["metadata"]["name"]] = {"persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    mounts = []
    for m in c.get("volumeMounts", []):
        volume = volumes[m["name"]]
        kind = next(k for k in ("emptyDir", "persistentVolumeClaim", "configMap", "secret") if k in volume)
        source = volume[kind].get("name") or volume[kind].get("claimName") or volume[kind].get("secretName") or ""
        mounts.append(Mount(m["name"], m["mountPath"], bool(m.get("readOnly")), kind, source))
    pod_security, security = spec.get("securityContext", {}), c.get("securityContext", {})
    return ContainerRun(
        name=c["name"], image=c["image"],
        command=[expand(x, env) for x in c["command"]] if "command" in c else None,
        args=[expand(x, env) for x in c["args"]] if "args" in c else None,
        env=env,
        user=security.get("runAsUser", pod_security.get("runAsUser", 0)),
        group=security.get("runAsGroup", pod_security.get("runAsGroup", 0)),
        fs_group=pod_security.get("fsGroup"),
        workdir=c.get("workingDir"),
        mounts=mounts,
        read_only_root=bool(security.get("readOnlyRootFilesystem")),
        capabilities_dropped=list(security.get("capabilities", {}).get("drop", [])),
        no_new_privileges=security.get("allowPrivilegeEscalation") is False)
