"""Images: size per target, build time (cold, with the wheel cache, unchanged tree), and container
start to SERVING (optimizer) and to the first training step (trainer), run as the manifests run them.

    .venv/bin/python bench/images.py [--builds] [--out bench-images.json]     # as root, with podman

Without --builds only sizes and start times are measured (the images must exist: `make images`).
--builds rebuilds the CPU targets three ways, each from scratch of the layer cache (buildah
--no-cache): with an empty wheel cache (cold: every wheel downloaded), with the wheel cache of the
previous build, and then once more with the layer cache (nothing changed). It takes long: a cold build
downloads and installs TensorFlow. Results: docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.deploy.cluster import Cluster, build, unavailable  # noqa: E402
from tests.deploy.kustomize import render  # noqa: E402
from tests.deploy.objects import example_secrets, one, trainer_workload  # noqa: E402
from tests.deploy.pods import container_run  # noqa: E402

CPU_TARGETS = ("optimizer", "tools", "trainer-cpu", "serving-sync")
SECRETS = example_secrets()  # made-up keys for every Secret of k8s/secret.example.yaml
# Where buildah keeps RUN --mount=type=cache directories (the Dockerfile's id=saga-wheels).
WHEEL_CACHE = Path(os.environ.get("TMPDIR", "/var/tmp")) / "buildah-cache" / "saga-wheels"
STUDY = {"name": "bench", "dataset": {"uri": "s3://saga/datasets/tiny"}, "model": {"weights": None, "image_size": 32},
         "strategy": "random", "search_space": {"backbone": {"type": "categorical", "values": ["MobileNetV2"]}},
         "budget": {"trials_per_phase": 1, "initial_points": 1, "parallel_trials": 1},
         "training": {"head_epochs": 1, "finetune_epochs": 1, "batch_size": 8}, "seed": 0}


def build_times(report: dict) -> None:
    def timed(label: str, *extra: str) -> None:
        out = Path(tempfile.mkstemp(suffix=".json")[1])
        started = time.monotonic()
        subprocess.run([sys.executable, str(REPO / "k8s/images/build.py"), "--targets", *CPU_TARGETS,
                        "--report", str(out), *extra], check=True)
        report["builds"][label] = {"seconds": round(time.monotonic() - started, 1),
                                   "targets": json.loads(out.read_text())["targets"]}
        print(f"{label}: {report['builds'][label]['seconds']:.0f}s", flush=True)

    report["builds"] = {}
    aside = WHEEL_CACHE.with_name("saga-wheels.bench-aside")
    if WHEEL_CACHE.exists():
        WHEEL_CACHE.rename(aside)
    try:
        timed("cold (no layer cache, no wheel cache)", "--no-cache")
    finally:
        if aside.exists():
            shutil.rmtree(WHEEL_CACHE, ignore_errors=True)
            aside.rename(WHEEL_CACHE)
    timed("with the wheel cache (no layer cache)", "--no-cache")
    timed("unchanged tree (layer cache)")


def sizes(report: dict, cluster: Cluster) -> None:
    report["sizes_mb"] = {}
    for target in CPU_TARGETS:
        out = cluster.podman("image", "inspect", "--format", "{{.Size}}", cluster.target_image(target)).stdout
        report["sizes_mb"][target] = round(int(out.strip()) / 1e6)


def start_times(report: dict, cluster: Cluster, tmp: Path) -> None:
    objects = render(REPO / "k8s" / "overlays" / "dev")
    config = one(objects, "ConfigMap", "saga-config")["data"]

    def volumes(pod: str, run) -> dict[str, Path]:
        return {m.volume: cluster.volume_dir(pod, run, m.volume) for m in run.mounts}

    minio = cluster.pod("minio", aliases=("minio",))
    cluster.in_pod_network(minio, [sys.executable, "-m", "moto.server", "-H", "0.0.0.0", "-p",
                                   config["SAGA_S3_ENDPOINT"].rsplit(":", 1)[1]], tmp / "moto.log")
    run = container_run(one(objects, "Deployment", "optimizer"), "optimizer", objects, SECRETS)
    pod = cluster.pod("optimizer", aliases=("optimizer",))
    started = time.monotonic()
    optimizer = cluster.start(pod, run, volumes(pod, run))
    cluster.wait_for("optimizer SERVING", lambda: cluster.podman("healthcheck", "run", optimizer, check=False)
                     .returncode == 0, timeout=900, alive=(optimizer,), every=0.5)
    report["start_to_serving_s"] = {"optimizer": round(time.monotonic() - started, 1)}

    cli_manifest = yaml.safe_load((REPO / "k8s" / "saga-cli.yaml").read_text())
    cli_run = container_run(cli_manifest, "saga", objects, SECRETS)
    cli_pod = cluster.pod("saga-cli")
    cli = cluster.start(cli_pod, cli_run, volumes(cli_pod, cli_run))
    for argv in (["saga", "data", "synth", "/work/tiny", "--classes", "2", "--per-class", "16", "--size", "32"],
                 ["saga", "data", "upload", "/work/tiny", STUDY["dataset"]["uri"]]):
        assert cluster.exec(cli, argv).returncode == 0, argv
    (volumes(cli_pod, cli_run)["work"] / "study.json").write_text(json.dumps(STUDY))
    created = cluster.exec(cli, ["saga", "study", "create", "/work/study.json"])
    assert created.returncode == 0, created.stderr
    study = re.search(r"\bst-[0-9a-f]+\b", created.stdout)[0]

    def first_step() -> bool:  # the optimizer has the first epoch's report of the trial
        probe = ("import os, sys; from optimizer_svc.client import OptimizerClient\n"
                 "with OptimizerClient(os.environ['SAGA_OPTIMIZER']) as c:\n"
                 "    sys.exit(0 if any(t.measurements for t in c.list_trials(sys.argv[1], with_measurements=True)) else 1)")
        return cluster.exec(cli, ["python", "-c", probe, study]).returncode == 0

    trainer_run = container_run(trainer_workload(objects), "trainer", objects, SECRETS)
    trainer_pod = cluster.pod("trainer")
    started = time.monotonic()
    trainer = cluster.start(trainer_pod, trainer_run, volumes(trainer_pod, trainer_run))
    cluster.wait_for("first epoch reported", first_step, timeout=1800, alive=(trainer,), every=1)
    report["start_to_first_epoch_s"] = {"trainer-cpu": round(time.monotonic() - started, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--builds", action="store_true", help="also time cold, wheel-cached and unchanged builds")
    p.add_argument("--out", type=Path, help="write the results as JSON")
    args = p.parse_args()
    report: dict = {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]}
    if args.builds:
        build_times(report)
    why = unavailable(CPU_TARGETS)
    if why:
        print(f"cannot run containers: {why}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="saga-bench-images-") as tmp:
        cluster = Cluster(Path(tmp))
        try:
            sizes(report, cluster)
            start_times(report, cluster, Path(tmp))
        finally:
            cluster.close()
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
