#!/usr/bin/env python3
"""Builds every target of the Dockerfile (``make images``), with or without a registry.

Where the official bases can be pulled (``python:3.11-slim``, ``tensorflow/tensorflow:*-gpu``) they
are used; where no registry can be reached, a Debian bookworm base with Python 3.11 is made with
``debootstrap`` and imported, every CPU target is built on it, and the GPU ``trainer`` (whose CUDA
base cannot be made locally) is skipped with the reason -- ``trainer-cpu`` is the same worker.

The builder is buildah (images land in the storage podman runs them from) or, where buildah is not
installed, docker. Each build mounts this host's pip settings read-only (CA bundle, pip.conf and the
local indexes it names), so that pip inside the build reaches the same package index as pip here;
nothing of them lands in a layer. The wheels pip downloads are kept in a build cache (see the
Dockerfile), so a rebuild does not download TensorFlow again.

Only the standard library: this runs before the project's virtualenv exists.
"""
from __future__ import annotations

import argparse
import fnmatch
import functools
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
CPU_TARGETS = ("optimizer", "tools", "trainer-cpu", "serving-sync")
GPU_TARGET = "trainer"
TARGETS = (*CPU_TARGETS, GPU_TARGET)
LOCAL_BASE = "localhost/saga-python-base:bookworm"
DEFAULT_TAG = "0.1.0"
# The Debian release of python:3.11-slim-bookworm; its python3 is 3.11 as the lock requires.
DEBIAN_RELEASE = "bookworm"
DEBOOTSTRAP_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
# podman's defaults when the host allows them (nofile, nproc); lower hard limits must be passed on.
PODMAN_NOFILE, PODMAN_NPROC = 1048576, 4194304
BUILDAH_NPROC = 32768  # buildah's own default, granted where podman's is refused
PULL_TIMEOUT_S = 30


def image_name(target: str, tag: str = DEFAULT_TAG, prefix: str = "localhost/") -> str:
    """The local name of a target's image: ``localhost/saga-<target>:<tag>``."""
    return f"{prefix}saga-{target}:{tag}"


def dockerfile_defaults(path: Path = DOCKERFILE) -> dict[str, str]:
    """The ``ARG NAME=default`` values declared before the first FROM (the base images)."""
    defaults: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("FROM "):
            break
        match = re.match(r"ARG (\w+)=(\S+)", line)
        if match:
            defaults[match[1]] = match[2]
    return defaults


# ----------------------------------------------------------------------------------- build context
def _ignore_rules(repo: Path) -> list[tuple[bool, str]]:
    rules = []
    for line in (repo / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    return rules


def context_allows(path: str, rules: list[tuple[bool, str]]) -> bool:
    """Whether ``.dockerignore`` lets ``path`` (relative, with /) into the context; last match wins."""
    allowed = True
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for negate, pattern in rules:
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "")) for p in prefixes):
            allowed = negate
    return allowed


def context_files(repo: Path = REPO) -> list[str]:
    """Every file the build context holds, as sorted relative paths."""
    rules = _ignore_rules(repo)
    found = []
    for root, dirs, files in os.walk(repo):
        rel_root = Path(root).relative_to(repo).as_posix()
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "node_modules")]
        for name in files:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if context_allows(rel, rules):
                found.append(rel)
    return sorted(found)


def source_digest(repo: Path = REPO) -> str:
    """sha256 over the Dockerfile and every file of the build context: the images' label, so a test
    can tell an image built from this tree from a stale one."""
    digest = hashlib.sha256()
    for rel in ["Dockerfile", *context_files(repo)]:
        digest.update(rel.encode() + b"\0" + (repo / rel).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------- host settings
def container_env(workdir: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for podman and buildah on this host.

    podman asks the kernel for nofile=1048576 and nproc=4194304 in every container; a host whose hard
    limits are lower refuses to start any container ("error setting rlimit"). Then a containers.conf
    with limits the host grants (its own nofile, buildah's default nproc) is written under
    ``workdir`` and named by CONTAINERS_CONF.
    """
    env = dict(os.environ if environ is None else environ)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    low = [limit != resource.RLIM_INFINITY and limit < default
           for limit, default in ((nofile, PODMAN_NOFILE), (nproc, PODMAN_NPROC))]
    if any(low) and "CONTAINERS_CONF" not in env:
        nofile = PODMAN_NOFILE if nofile == resource.RLIM_INFINITY else min(nofile, PODMAN_NOFILE)
        nproc = BUILDAH_NPROC if nproc == resource.RLIM_INFINITY else min(nproc, BUILDAH_NPROC)
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "containers.conf"
        conf.write_text("# Written by k8s/images/build.py: this host's hard limits are below podman's defaults.\n"
                        f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n')
        env["CONTAINERS_CONF"] = str(conf)
    return env


_PIP_PATH_KEYS = {"cert", "client-cert", "constraint", "requirement", "find-links", "index-url",
                  "extra-index-url"}
_SCOPE_ORDER = {"global": 0, "user": 1, "site": 2, ":env:": 3}


def pip_settings(python: str = sys.executable) -> dict[str, str]:
    """This host's effective pip settings (``pip config list``), environment variables included."""
    try:
        out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    entries = []
    for line in out.splitlines():
        match = re.match(r"^([^.=]+)\.([\w-]+)='(.*)'$", line.strip())
        if match:
            entries.append((_SCOPE_ORDER.get(match[1], 0), match[2], match[3]))
    return {key: value for _, key, value in sorted(entries, key=lambda e: e[0])}


def pip_mounts(workdir: Path, settings: dict[str, str]) -> list[str]:
    """``-v`` arguments that give pip inside a build this host's pip settings, read-only: one
    pip.conf with every setting, and every local file or directory a setting names."""
    if not settings:
        return []
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "pip.conf"
    conf.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(settings.items())))
    mounts = [f"{conf}:/etc/pip.conf:ro"]
    paths = set()
    for key, value in settings.items():
        if key not in _PIP_PATH_KEYS:
            continue
        for item in value.split():
            path = item[len("file://"):] if item.startswith("file://") else item
            path = path.rstrip("/") or "/"
            if key.endswith("index-url") and Path(path).name == "simple":
                path = str(Path(path).parent)  # a file index's pages link to files beside it
            if path.startswith("/") and Path(path).exists():
                paths.add(path)
    mounts += [f"{p}:{p}:ro" for p in sorted(paths)]
    return mounts


# ----------------------------------------------------------------------------------- bases
@dataclass
class Builder:
    """buildah (and podman to inspect and pull) or docker."""

    kind: str
    env: dict[str, str]
    mounts: list[str] = field(default_factory=list)

    def run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        tool = "docker" if self.kind == "docker" else args[0]
        return subprocess.run([tool, *args[1:]], env=self.env, text=True, **kw)

    def exists(self, ref: str) -> bool:
        tool = "docker" if self.kind == "docker" else "podman"
        args = ["image", "inspect", ref] if self.kind == "docker" else ["image", "exists", ref]
        return subprocess.run([tool, *args], env=self.env, capture_output=True).returncode == 0

    def pull(self, ref: str) -> bool:
        tool = "docker" if self.kind == "docker" else "podman"
        try:
            return subprocess.run([tool, "pull", "--quiet", ref], env=self.env, capture_output=True,
                                  timeout=PULL_TIMEOUT_S).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def size(self, ref: str) -> int:
        tool = "docker" if self.kind == "docker" else "podman"
        out = subprocess.run([tool, "image", "inspect", "--format", "{{.Size}}", ref], env=self.env,
                             capture_output=True, text=True).stdout.strip()
        return int(out) if out.isdigit() else 0

    def build(self, target: str, ref: str, build_args: dict[str, str], no_cache: bool = False) -> None:
        args = [f"--build-arg={k}={v}" for k, v in sorted(build_args.items())]
        if self.kind == "docker":
            cmd = ["docker", "build", "--target", target, "-t", ref, *args, "-f", str(DOCKERFILE), str(REPO)]
        else:
            cmd = ["buildah", "bud", "--layers", "--format", "docker", "--network", "host",
                   *[f"--volume={m}" for m in self.mounts], "--target", target, "-t", ref, *args,
                   "-f", str(DOCKERFILE), str(REPO)]
        if no_cache:
            cmd.insert(2, "--no-cache")
        subprocess.run(cmd, env=self.env, check=True)
        if self.kind == "buildah" and "SOURCE_DIGEST" in build_args:
            self._relabel(ref, build_args["SOURCE_DIGEST"])

    def _relabel(self, ref: str, digest: str) -> None:
        """buildah's layer cache keys ``LABEL x=$ARG`` on the instruction's text, not the argument's
        value: a target whose layers did not change (serving-sync after a Python-only change) came
        out with the previous build's digest. Setting the label on the built image fixes that."""
        run = functools.partial(subprocess.run, env=self.env, check=True, capture_output=True, text=True)
        container = run(["buildah", "from", "--pull=never", ref]).stdout.strip()
        try:
            run(["buildah", "config", "--label", f"io.saga.source-digest={digest}", container])
            run(["buildah", "commit", "--quiet", "--format", "docker", container, ref])
        finally:
            run(["buildah", "rm", container])


def pick_builder(workdir: Path) -> Builder | None:
    env = container_env(workdir)
    if shutil.which("buildah") and shutil.which("podman"):
        return Builder("buildah", env, pip_mounts(workdir, pip_settings()))
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return Builder("docker", env)
    return None


def make_local_base(builder: Builder, ref: str = LOCAL_BASE, mirror: str | None = None) -> None:
    """A minimal Debian base with Python 3.11 and venv, made with debootstrap and imported as ``ref``."""
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise SystemExit("no base image can be pulled and none can be made here: debootstrap needs root "
                         "(`apt-get install debootstrap`, run as root), or pull "
                         f"{dockerfile_defaults()['PYTHON_IMAGE']} from a registry")
    mirror = mirror or os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
    with tempfile.TemporaryDirectory(prefix="saga-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        print(f"making {ref}: debootstrap {DEBIAN_RELEASE} from {mirror}", flush=True)
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}",
                        DEBIAN_RELEASE, str(rootfs), mirror], check=True, stdout=subprocess.DEVNULL)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/info", "usr/share/locale"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                elif entry.name != "lock":
                    entry.unlink()
        tool = "docker" if builder.kind == "docker" else "podman"
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([tool, "import", "--change", 'CMD ["python3"]', "--change", "ENV LANG=C.UTF-8",
                        "-", ref], stdin=tar.stdout, env=builder.env, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise SystemExit("tar of the debootstrap root failed")


def choose_bases(builder: Builder, mode: str) -> tuple[dict[str, str], str | None]:
    """(build args for the CPU targets, the GPU base or None when it cannot be had)."""
    defaults = dockerfile_defaults()
    official, gpu = defaults["PYTHON_IMAGE"], defaults["TF_GPU_IMAGE"]
    if mode == "official" or (mode == "auto" and (builder.exists(official) or
                                                  (not builder.exists(LOCAL_BASE) and builder.pull(official)))):
        if not builder.exists(official) and not builder.pull(official):
            raise SystemExit(f"cannot pull {official}; try --base local")
        python = official
    else:
        if not builder.exists(LOCAL_BASE):
            make_local_base(builder)
        python = LOCAL_BASE
    gpu_ok = builder.exists(gpu) or (mode != "local" and builder.pull(gpu))
    return {"PYTHON_IMAGE": python}, (gpu if gpu_ok else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", choices=("auto", "local", "official"), default=os.environ.get("SAGA_IMAGE_BASE", "auto"),
                   help="official bases from a registry, a local debootstrap base, or auto (official where "
                        "they can be pulled); env SAGA_IMAGE_BASE")
    p.add_argument("--tag", default=DEFAULT_TAG)
    p.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    p.add_argument("--no-cache", action="store_true", help="rebuild every layer (the wheel cache is kept)")
    p.add_argument("--report", type=Path, help="write build seconds and image sizes as JSON here")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="saga-images-"))
    try:
        builder = pick_builder(workdir)
        if builder is None:
            print("no image builder: install buildah and podman (`apt-get install podman buildah "
                  "debootstrap runc`) or docker", file=sys.stderr)
            return 1
        prefix = "localhost/" if builder.kind == "buildah" else ""
        build_args, gpu_base = choose_bases(builder, args.base)
        build_args["SOURCE_DIGEST"] = source_digest()
        print(f"building with {builder.kind}: base {build_args['PYTHON_IMAGE']}, "
              f"source {build_args['SOURCE_DIGEST']}", flush=True)
        results = {}
        for target in args.targets:
            ref = image_name(target, args.tag, prefix)
            if target == GPU_TARGET and gpu_base is None:
                print(f"skipped {target}: its base {dockerfile_defaults()['TF_GPU_IMAGE']} cannot be pulled "
                      "here (no registry); trainer-cpu is the same worker on the CPU", flush=True)
                results[target] = {"skipped": "GPU base image unavailable"}
                continue
            extra = {"TF_GPU_IMAGE": gpu_base} if target == GPU_TARGET else {}
            started = time.monotonic()
            builder.build(target, ref, {**build_args, **extra}, no_cache=args.no_cache)
            seconds = time.monotonic() - started
            results[target] = {"image": ref, "seconds": round(seconds, 1), "bytes": builder.size(ref)}
            print(f"built {ref} in {seconds:.0f}s ({results[target]['bytes'] / 1e6:.0f} MB)", flush=True)
        if args.report:
            args.report.write_text(json.dumps({"base": build_args["PYTHON_IMAGE"], "builder": builder.kind,
                                               "targets": results}, indent=2) + "\n")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
