"""Every path a Saga process writes in the cluster is on a writable volume its manifest declares.

The paths come from saga/runtime_paths.py, the one place that derives them, fed with what the
container really gets: its command and arguments, the image's ENV and WORKDIR (Dockerfile), the
ConfigMap and Secret variables. The root filesystem is read-only (test_manifests.py checks that), so
a path anywhere else fails at run time -- as the trainer's work directory `.saga/work` under the
read-only home once failed every trial with `OSError: [Errno 30] Read-only file system`.
"""
from __future__ import annotations

import argparse
import copy
import importlib
import os
from pathlib import PurePosixPath
from unittest import mock

import pytest
import yaml

from saga import runtime_paths

from .conftest import K8S, KUSTOMIZATIONS
from .kustomize import containers
from .objects import Object, example_secrets, trainer_workload, workloads
from .pods import ContainerRun, container_run
from .test_dockerfile import STAGES, TARGETS

IMAGES = {f"saga-{target}": target for target in TARGETS}
SECRETS = example_secrets()


def _saga_containers(objects: list[Object]) -> list[tuple[Object, ContainerRun]]:
    runs = []
    for obj in workloads(objects):
        for c in containers(obj):
            run = container_run(obj, c["name"], objects, SECRETS)
            if run.image_name in IMAGES:
                runs.append((obj, run))
    return runs


def written_paths(run: ContainerRun) -> dict[str, PurePosixPath]:
    """Role -> absolute path, for every path the container's process writes."""
    stage = STAGES[IMAGES[run.image_name]]
    env = {**stage.env, **run.env}
    workdir = PurePosixPath(run.workdir or stage.workdir)
    argv = (run.command if run.command is not None else stage.entrypoint) + (run.args or [])
    if argv[:2] == ["python", "/opt/saga/sync_models.py"]:  # the sync sidecar writes its --dest only
        from .test_serving_sync import sync_models
        return {"dest": workdir / sync_models.build_parser().parse_args(argv[2:]).dest}
    if argv[:3] == ["python", "-m", "serving.gateway"]:  # a proxy: reads its certificate and tokens, writes nothing
        return {}
    writable_home = run.writable_mount(env.get("HOME", "/")) is not None
    if argv[0] != "saga":  # a shell for people (saga-cli): any command, in the working directory
        paths = runtime_paths.command_paths(env, writable_home)
        return {"working directory": workdir, **{k: workdir / v for k, v in paths.dirs.items()}}
    command, rest = argv[1], argv[2:]
    parser = argparse.ArgumentParser()
    with mock.patch.dict(os.environ, env, clear=True):  # flag defaults come from the environment
        importlib.import_module(f"saga.cli.{command}").configure(parser)
    args = parser.parse_args(rest)
    paths = runtime_paths.for_command(command, args, env, writable_home)
    return {role: workdir / path for role, path in paths.dirs.items()}


def _unwritable(run: ContainerRun) -> list[str]:
    return [f"{role} {path}" for role, path in written_paths(run).items() if run.writable_mount(str(path)) is None]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_path_a_saga_process_writes_is_on_a_writable_volume(rendered, name: str) -> None:
    runs = _saga_containers(rendered[name])
    assert {r.image_name for _, r in runs} >= {"saga-optimizer", "saga-serving-sync"}
    for obj, run in runs:
        assert not _unwritable(run), f"{obj['metadata']['name']}/{run.name} writes off its volumes: {_unwritable(run)}"


def test_the_cli_pod_works_in_its_volume() -> None:
    pod = yaml.safe_load((K8S / "saga-cli.yaml").read_text())
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "saga-config"}, "data": {}}
    run = container_run(pod, "saga", [pod, config], SECRETS)
    assert run.image_name == "saga-tools"
    assert not _unwritable(run)


def test_the_trainer_writes_weights_and_work_on_its_cache_volume(rendered) -> None:
    objects = rendered["overlays/gpu"]
    run = container_run(trainer_workload(objects), "trainer", objects, SECRETS)
    paths = written_paths(run)
    cache = run.writable_mount(str(paths["cache"]))
    assert run.writable_mount(str(paths["work"])) == cache  # checkpoints: 100 GiB, not the 2 GiB /tmp
    assert run.writable_mount(str(paths["keras home"])) == cache  # weights survive trials
    assert cache.kind == "emptyDir"


def test_a_trainer_left_with_its_defaults_would_write_the_read_only_home(rendered) -> None:
    """What the check catches: without --cache-dir the trainer's paths are under /home/saga."""
    objects = copy.deepcopy(rendered["overlays/dev"])
    trainer = trainer_workload(objects)
    args = containers(trainer)[0]["args"]
    del args[args.index("--cache-dir"):args.index("--cache-dir") + 2]
    run = container_run(trainer, "trainer", objects, SECRETS)
    assert {"cache /home/saga/.saga/cache", "work /home/saga/.saga/cache/work"} <= set(_unwritable(run))
