"""Benchmark of the trainer's input pipeline (not a test).

1. throughput: images/s of training from local JPEG files through trainer_svc.pipeline, divided
   by images/s of the same train step on in-memory tensors (batch 16, 128 px). Target >= 0.9.
2. startup: seconds from run_task start to the first training batch, cold and warm dataset
   cache, next to the training time of the same trial (local-directory store).
3. memory: peak RSS of one cached training epoch over a Kvasir-sized split (8000 images,
   299 px), measured in a child process.

Usage: .venv/bin/python bench/input_pipeline.py [--quick]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

CLASSES = ["a", "b", "c", "d"]


def write_images(root: Path, count: int, size: tuple[int, int]) -> list[tuple[str, int]]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(count):
        label = i % len(CLASSES)
        pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        path = root / CLASSES[label] / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)
        items.append((str(path), label))
    return items


def throughput(tmp: Path, count: int, epochs: int) -> dict[str, float]:
    import keras
    import tensorflow as tf

    from trainer_svc.backbones import get_backbone
    from trainer_svc.models import build_model, compile_for_step, set_trainable
    from trainer_svc.pipeline import PipelineConfig, make_dataset
    from trainer_svc.task import DelimitingLayer

    items = write_images(tmp / "tp", count, (200, 160))
    pre = get_backbone("MobileNetV2").preprocess_input
    keras.utils.set_random_seed(0)
    model = build_model("MobileNetV2", len(CLASSES), 128)
    set_trainable(model, "finetune", DelimitingLayer(relative=2 / 3))
    compile_for_step(model, "Adam", 1e-3)
    files = make_dataset(items, len(CLASSES), PipelineConfig(128, 16), pre, training=True)
    # The ideal input: one preprocessed batch already in memory, repeated (no per-element work).
    x = pre(tf.random.uniform((16, 128, 128, 3), 0, 255))
    y = tf.constant([i % len(CLASSES) for i in range(16)], tf.int32)
    memory = tf.data.Dataset.from_tensors((x, y)).repeat(count // 16)

    def rate(ds: tf.data.Dataset) -> float:
        start = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0)
        return (count // 16 * 16) / (time.perf_counter() - start)

    rate(memory)  # trace the train step once, outside every measurement
    # Interleaved, so load from other processes on a shared machine hits both sides alike.
    # File epoch 1 decodes the files (cold); later ones read the pipeline's cache.
    file_rates, mem_rates = [], []
    for _ in range(epochs):
        file_rates.append(rate(files))
        mem_rates.append(rate(memory))
    steady_mem = float(np.median(mem_rates))
    return {"images": count, "memory_img_s": steady_mem,
            "files_cold_epoch_img_s": file_rates[0],
            "files_cached_img_s": float(np.median(file_rates[1:])),
            "ratio_cold_epoch": file_rates[0] / steady_mem,
            "ratio_cached": float(np.median(file_rates[1:])) / steady_mem}


class _Timing:
    """A reporter that timestamps the first training batch and every epoch."""

    def __init__(self) -> None:
        self.first_batch: float | None = None
        self.last_report = 0.0

    def report(self, step: str, epoch: int, metrics: dict[str, float]) -> str:
        self.last_report = time.perf_counter()
        return "continue"

    def heartbeat(self) -> None:
        if self.first_batch is None:
            self.first_batch = time.perf_counter()


def startup(tmp: Path, count: int) -> dict[str, float]:
    from datastore import open_store
    from datastore.local_store import LocalStore
    from datastore.manifest import Item, Manifest, save_manifest
    from trainer_svc.runner import run_task
    from trainer_svc.task import parse_task

    store = LocalStore(tmp / "store" / "ds")
    entries = []
    for i, (path, label) in enumerate(write_images(tmp / "src", count, (400, 320))):
        split = ("train", "train", "validation", "test")[i % 4]
        key = f"{split}/{CLASSES[label]}/{Path(path).name}"
        data = Path(path).read_bytes()
        store.put_bytes(key, data)
        entries.append(Item(key, hashlib.sha256(data).hexdigest(), CLASSES[label], len(data), key, split))
    save_manifest(store, Manifest(CLASSES, entries, 0, {"train": .5, "validation": .25, "test": .25}))
    out = {}
    for run in ("cold", "warm"):
        task = parse_task({
            "study_id": "bench", "trial_id": run, "artifacts_uri": str(tmp / "store" / run),
            "dataset": {"uri": store.uri},
            "model": {"backbone": "MobileNetV2", "weights": None, "image_size": 128},
            "steps": [{"name": "head", "optimizer": "Adam", "learning_rate": 1e-3, "max_epochs": 2},
                      {"name": "finetune", "optimizer": "Adam", "learning_rate": 1e-4,
                       "max_epochs": 1, "delimiting_layer": {"relative": 0.6667}}],
            "training": {"batch_size": 16}, "seed": 1})
        timing = _Timing()
        start = time.perf_counter()
        run_task(task, open_store, timing, tmp / "cache", tmp / f"work-{run}", heartbeat_every_s=0.0)
        total = time.perf_counter() - start
        assert timing.first_batch is not None
        out[f"{run}_to_first_step_s"] = timing.first_batch - start
        out[f"{run}_training_s"] = timing.last_report - timing.first_batch
        out[f"{run}_total_s"] = total
    return out


def _status_mib(field: str) -> float:
    """A VmRSS/VmHWM line of /proc/self/status in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _rss_child(folder: Path, size: int) -> None:
    """Runs in a child: one cached epoch over the images in ``folder``; prints RSS before the
    pipeline (TensorFlow imported) and the peak RSS after two epochs."""
    import tensorflow as tf  # noqa: F401  (counted in the baseline)

    from trainer_svc.backbones import get_backbone
    from trainer_svc.pipeline import PipelineConfig, make_dataset

    items = [(str(p), CLASSES.index(p.parent.name)) for p in sorted(folder.rglob("*.jpg"))]
    base = _status_mib("VmRSS")
    ds = make_dataset(items, len(CLASSES), PipelineConfig(size, 16),
                      get_backbone("InceptionV3").preprocess_input, training=True)
    for _ in range(2):  # epoch 1 fills the cache, epoch 2 reads it
        for _batch in ds:
            pass
    print(json.dumps({"images": len(items), "size": size, "rss_before_mib": base,
                      "peak_rss_mib": _status_mib("VmHWM"),
                      "cache_uint8_mib": len(items) * size * size * 3 / 2**20}))


def memory(tmp: Path, count: int) -> dict[str, float]:
    folder = tmp / "rss"
    write_images(folder, count, (400, 320))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--rss-child", str(folder)], check=True,
                         capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["two_epochs_s"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["throughput", "startup", "memory"], action="append")
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child, 299)
        return
    only = set(args.only or ["throughput", "startup", "memory"])
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="saga-bench-") as tmp:
        if "throughput" in only:
            results["throughput"] = throughput(Path(tmp), 96 if args.quick else 320, 2 if args.quick else 3)
        if "startup" in only:
            results["startup"] = startup(Path(tmp), 80 if args.quick else 400)
        if "memory" in only:
            results["memory"] = memory(Path(tmp), 400 if args.quick else 8000)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
