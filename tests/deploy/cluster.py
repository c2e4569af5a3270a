"""A small stand-in for a cluster: the rendered manifests' pods as podman pods on a private network.

Each Kubernetes pod becomes a podman pod (its containers share one network namespace, as in
Kubernetes) on an internal podman network, reachable by the names of the Services that select it
(network aliases), so no port lands on the host's. Each container runs as the kubelet would run it
(tests/deploy/pods.py): its command and arguments, the environment from the ConfigMap and the
Secret, its user and group, a read-only root with no tmpfs added, every capability dropped, no new
privileges, and only its declared volumes writable: emptyDirs and claims are host directories owned
by the pod's fsGroup; ConfigMap volumes are read-only directories of the data.

Needs root (podman as root, nsenter into a pod's network namespace for the S3 server) and the images
of ``make images``. Used by tests/deploy/test_containers.py and bench/images.py.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Callable

from .pods import ContainerRun

REPO = Path(__file__).resolve().parents[2]


def _load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("saga_image_build", REPO / "k8s" / "images" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


build = _load_build()


def unavailable(targets: tuple[str, ...], tag: str = build.DEFAULT_TAG) -> str | None:
    """Why the container test cannot run here, or None when it can."""
    if not shutil.which("podman"):
        return "podman is not installed (`make sysdeps` installs podman, buildah, runc and debootstrap as root)"
    if os.geteuid() != 0:
        return "the container test runs podman as root (host directories as volumes owned by uid 10001, nsenter)"
    if not shutil.which("nsenter"):
        return "nsenter (util-linux) is not installed"
    env = build.container_env(Path("/tmp") / f"saga-podman-check-{os.getpid()}")
    info = subprocess.run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"], env=env,
                          capture_output=True, text=True, timeout=120)
    if info.returncode != 0:
        return f"podman cannot run containers here: {info.stderr.strip()[-300:]}"
    missing = [t for t in targets if subprocess.run(["podman", "image", "exists", build.image_name(t, tag)],
                                                    env=env).returncode != 0]
    if missing:
        return f"images not built: {', '.join(missing)} (run `make images`; `make test` builds them)"
    return None


def stale_images(targets: tuple[str, ...], tag: str = build.DEFAULT_TAG) -> list[str]:
    """Images built from another version of the build context than this tree's."""
    digest = build.source_digest()
    env = build.container_env(Path("/tmp") / f"saga-podman-check-{os.getpid()}")
    stale = []
    for target in targets:
        label = subprocess.run(["podman", "image", "inspect", "--format",
                                '{{index .Config.Labels "io.saga.source-digest"}}', build.image_name(target, tag)],
                               env=env, capture_output=True, text=True).stdout.strip()
        if label != digest:
            stale.append(f"{target} ({label or 'no label'}, tree {digest})")
    return stale


class ContainerExited(AssertionError):
    """A container that should be running has stopped; the message holds its log."""


class Cluster:
    """Pods, one internal network, host directories for volumes; :meth:`close` removes all of it."""

    def __init__(self, workdir: Path, tag: str = build.DEFAULT_TAG):
        self.workdir, self.tag = workdir, tag
        self.name = f"saga-test-{uuid.uuid4().hex[:8]}"
        self.env = build.container_env(workdir / "podman")
        self.network = self.name
        self.pods: list[str] = []
        self.containers: list[str] = []
        self._helpers: list[subprocess.Popen] = []
        self.podman("network", "create", "--internal", self.network)

    def podman(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:3])}... failed: {result.stderr.strip()[-2000:]}")
        return result

    # -------------------------------------------------------------------------------- pods
    def pod(self, name: str, aliases: tuple[str, ...] = ()) -> str:
        """A pod on the network, reachable as each of ``aliases`` (its Services' names)."""
        pod = f"{self.name}-{name}"
        args = ["pod", "create", "--name", pod, "--hostname", name, "--network", self.network]
        for alias in aliases:
            args += ["--network-alias", alias]
        self.podman(*args)
        self.pods.append(pod)
        return pod

    def pod_pid(self, pod: str) -> int:
        """A process inside the pod's namespaces (its infra container)."""
        self.podman("pod", "start", pod)
        infra = self.podman("pod", "inspect", "--format", "{{.InfraContainerID}}", pod).stdout.strip()
        return int(self.podman("inspect", "--format", "{{.State.Pid}}", infra).stdout.strip())

    def in_pod_network(self, pod: str, argv: list[str], log: Path) -> subprocess.Popen:
        """Runs a host program inside the pod's network namespace (the S3 server: a test dependency,
        in no image), until :meth:`close`."""
        out = open(log, "ab")
        process = subprocess.Popen(["nsenter", "-t", str(self.pod_pid(pod)), "-n", *argv],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._helpers.append(process)
        return process

    # -------------------------------------------------------------------------------- volumes
    def volume_dir(self, pod: str, run: ContainerRun, volume: str, data: dict[str, str] | None = None) -> Path:
        """The host directory of one of ``pod``'s volumes, shared by its containers. An emptyDir or a
        claim is owned by the pod's fsGroup (group-writable, setgid) as the kubelet makes it; a
        ConfigMap's ``data`` becomes files."""
        path = self.workdir / "volumes" / pod / volume
        if not path.exists():
            path.mkdir(parents=True)
            for key, value in (data or {}).items():
                (path / key).write_text(value)
            if data is None:
                os.chown(path, 0, run.fs_group if run.fs_group is not None else run.group)
                path.chmod(0o2777 if run.fs_group is None else 0o2775)
        return path

    # -------------------------------------------------------------------------------- containers
    def image(self, run: ContainerRun) -> str:
        """The locally built image of the manifest's ``saga-*`` image."""
        return self.target_image(run.image_name.removeprefix("saga-"))

    def target_image(self, target: str) -> str:
        """The locally built image of a Dockerfile target."""
        return build.image_name(target, self.tag)

    def start(self, pod: str, run: ContainerRun, volumes: dict[str, Path], image: str | None = None,
              argv: list[str] | None = None) -> str:
        """Starts ``run`` in ``pod``; for a stand-in, ``image`` and ``argv`` (the whole command line)
        replace the manifest's."""
        name = f"{pod}-{run.name}"
        env_file = self.workdir / f"{name}.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in run.env.items()))
        args = ["run", "--detach", "--pod", pod, "--name", name, "--user", f"{run.user}:{run.group}",
                "--env-file", str(env_file), "--log-driver", "k8s-file"]
        if run.fs_group is not None:
            args += ["--group-add", str(run.fs_group)]
        if run.read_only_root:
            args += ["--read-only", "--read-only-tmpfs=false"]  # only the declared volumes are writable
        for cap in run.capabilities_dropped:
            args += ["--cap-drop", cap]
        if run.no_new_privileges:
            args += ["--security-opt", "no-new-privileges"]
        if run.workdir:
            args += ["--workdir", run.workdir]
        for mount in run.mounts:
            args += ["--volume", f"{volumes[mount.volume]}:{mount.path}:{'ro' if mount.read_only else 'rw'}"]
        # Kubernetes: `command` replaces the image's ENTRYPOINT (and drops its CMD), `args` its CMD.
        if argv is None:
            argv = (list(run.command) if run.command is not None else []) + list(run.args or [])
            entrypoint = run.command is not None
        else:
            entrypoint = True
        if entrypoint:
            args += ["--entrypoint", json.dumps(argv[:1])]
            argv = argv[1:]
        self.podman(*args, image or self.image(run), *argv)
        self.containers.append(name)
        return name

    def exec(self, container: str, argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
        """``kubectl exec``: runs ``argv`` in the running container, as its user."""
        return self.podman("exec", container, *argv, check=False, timeout=timeout)

    def running(self, container: str) -> bool:
        return self.podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip() == "true"

    def logs(self, container: str, tail: int = 60) -> str:
        out = self.podman("logs", "--tail", str(tail), container, check=False)
        return out.stdout + out.stderr

    def all_logs(self) -> str:
        return "\n".join(f"--- {c}\n{self.logs(c)}" for c in self.containers)

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float, alive: tuple[str, ...] = (),
                 every: float = 2.0) -> float:
        """Polls ``ready`` until true; fails at once with the logs when a container of ``alive`` stops.
        Returns the seconds it took."""
        started = time.monotonic()
        while not ready():
            for container in alive:
                if not self.running(container):
                    raise ContainerExited(f"{container} stopped while waiting for {what}:\n{self.logs(container)}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{what}: not after {timeout:.0f}s\n{self.all_logs()}")
            time.sleep(every)
        return time.monotonic() - started

    def close(self) -> None:
        for process in self._helpers:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        for pod in reversed(self.pods):
            self.podman("pod", "rm", "--force", "--time", "5", pod, check=False)
        self.podman("network", "rm", "--force", self.network, check=False)

