"""Quality on real images: Saga's best model against baselines on the same held-out test images.

Datasets (real images that a registry package installs with its data, nothing downloaded here):

- ``digits``: scikit-learn's bundled handwritten digits (1,797 images, 8 x 8, 10 classes);
- ``fashion``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (``apt-get install
  dataset-fashion-mnist``), the first ``--per-class`` (100) training images of each of its 10 classes.

For each: the images are written as a folder-per-class PNG tree, uploaded with ``saga data upload``
(70/15/15 stratified split), and a study runs on ``saga up``'s real processes (optimizer + one
trainer worker). Reported: the best trial's held-out test accuracy and macro-F1, the baselines each
trial carries (majority class; logistic regression on 16 x 16 pixels), a scikit-learn SVC on the
raw pixels of the same train/test images, the study's wall time and trial count.

    .venv/bin/python bench/quality.py [--datasets digits,fashion] [--trials 3] [--epochs 3] [--out .saga/bench-quality]

Results go to OUT/results.json and are printed as the Markdown rows of docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "boot"]
SAGA = str(Path(sys.executable).parent / "saga")


def write_digits(out: Path, per_class: int) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        pixels = np.round(image * (255.0 / 16.0)).astype(np.uint8)  # 17 grey levels in the original
        _save(out / f"digit{label}" / f"{i:04d}.png", pixels)


def write_fashion(out: Path, per_class: int) -> None:
    if not FASHION.is_dir():
        raise SystemExit(f"{FASHION} missing: apt-get install dataset-fashion-mnist")
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION / "train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    for label, name in enumerate(FASHION_CLASSES):
        for i in np.flatnonzero(labels == label)[:per_class]:
            _save(out / name / f"{i:05d}.png", images[i])


def _save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="L").save(path)


WRITERS = {"digits": (write_digits, 0), "fashion": (write_fashion, 100)}


def spec(name: str, uri: str, trials: int, args: argparse.Namespace) -> dict:
    """From scratch (no weights reach this machine): every layer trains, BatchNorm recalibrated."""
    return {
        "name": f"bench-{name}",
        "dataset": {"uri": uri},
        "model": {"weights": None, "image_size": args.image_size, "options": {"alpha": args.alpha}},
        "strategy": "joint",
        "search_space": {
            "backbone": {"type": "categorical", "values": ["MobileNetV2"]},
            "optimizer": {"type": "categorical", "values": ["Adam", "RMSprop", "Nadam"]},
            "learning_rate": {"type": "float", "low": args.lr_low, "high": args.lr_high, "scale": "log"},
        },
        "budget": {"trials_per_phase": trials, "initial_points": min(4, trials), "parallel_trials": 1},
        # no flips: digits and clothes are not flip-invariant (a 6 is not a 9, shoes stand upright)
        "training": {"head_epochs": args.epochs, "finetune_epochs": args.epochs, "batch_size": 32,
                     "augmentation": {"horizontal_flip": False, "vertical_flip": False}},
        "seed": 0,
    }


def svc_baseline(dataset_uri: str) -> dict[str, float]:
    """scikit-learn's SVC (defaults) on the raw pixels of the manifest's train and test images."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.svm import SVC

    from datastore import open_store
    from datastore.manifest import load_manifest

    store = open_store(dataset_uri)
    manifest = load_manifest(store)

    def xy(split: str) -> tuple[np.ndarray, np.ndarray]:
        items = manifest.items_in(split)
        x = [np.asarray(Image.open(io.BytesIO(store.get_bytes(it.key))).convert("L"), np.float32).ravel() / 255
             for it in items]
        return np.stack(x), np.array([manifest.class_index(it.label) for it in items])

    x_train, y_train = xy("train")
    x_test, y_test = xy("test")
    pred = SVC().fit(x_train, y_train).predict(x_test)
    return {"accuracy": float(accuracy_score(y_test, pred)),
            "macro_f1": float(f1_score(y_test, pred, average="macro")),
            "train_images": int(len(y_train)), "test_images": int(len(y_test))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_services(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (root / "up.log").open("w")
    proc = subprocess.Popen([SAGA, "up", "--workers", "1", "--no-serving", "--dir", str(root / "up"),
                             "--store", str(root / "store"), "--optimizer-port", str(port),
                             "--metrics-ports", "-1"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"saga up exited {proc.returncode}: see {root / 'up.log'}")
        if "all services ready" in (root / "up.log").read_text():
            return proc, f"127.0.0.1:{port}"
        time.sleep(1)
    raise SystemExit("saga up did not get ready in 600 s")


def run_dataset(name: str, root: Path, optimizer: str, args: argparse.Namespace) -> dict:
    from optimizer_svc.client import OptimizerClient, parameters

    src = root / "images" / name
    writer, default_per_class = WRITERS[name]
    writer(src, args.per_class or default_per_class)
    uri = str(root / "store" / "datasets" / name)
    subprocess.run([SAGA, "data", "upload", str(src), uri, "--seed", "0"], check=True)
    spec_path = root / f"{name}-study.json"
    spec_path.write_text(json.dumps(spec(name, uri, args.trials, args), indent=2))
    started = time.monotonic()
    out = subprocess.run([SAGA, "study", "--optimizer", optimizer, "create", str(spec_path), "--watch"],
                         check=False, capture_output=True, text=True)
    wall = time.monotonic() - started
    print(out.stdout[-2000:], out.stderr[-2000:], sep="\n")
    study_id = out.stdout.split("created study ", 1)[1].split()[0]
    with OptimizerClient(optimizer) as client:
        best = client.best_trial(study_id)
        trials = client.list_trials(study_id)
        m = dict(best.metrics) if best is not None else {}
        params = parameters(best) if best is not None else {}
    best_out = subprocess.run([SAGA, "study", "--optimizer", optimizer, "best", study_id],
                              capture_output=True, text=True).stdout
    return {"dataset": name, "study": study_id, "wall_s": wall, "trials": len(trials),
            "best": {"trial": best.id if best else None, "parameters": params,
                     "test_accuracy": m.get("test_accuracy"), "test_macro_f1": m.get("test_macro_f1"),
                     "val_accuracy": m.get("val_accuracy")},
            "baselines": {k: v for k, v in m.items() if k.startswith("baseline_")},
            "svc": svc_baseline(uri), "study_best_output": best_out}


def markdown(r: dict) -> str:
    b, base, svc = r["best"], r["baselines"], r["svc"]
    return (f"| {r['dataset']} | {svc['train_images']}/{svc['test_images']} | {r['trials']} | "
            f"{r['wall_s'] / 60:.0f} min | **{b['test_accuracy']:.3f}** / {b['test_macro_f1']:.3f} | "
            f"{base.get('baseline_majority_test_accuracy', float('nan')):.3f} | "
            f"{base.get('baseline_pixels_test_accuracy', float('nan')):.3f} / "
            f"{base.get('baseline_pixels_test_macro_f1', float('nan')):.3f} | "
            f"{svc['accuracy']:.3f} / {svc['macro_f1']:.3f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="fashion,digits")
    p.add_argument("--trials", type=int, default=3, help="trials per study (at most 20 for the target)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per step (two steps)")
    p.add_argument("--lr-low", type=float, default=1e-3, help="learning-rate range, log scale")
    p.add_argument("--lr-high", type=float, default=1e-2)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--alpha", type=float, default=0.35, help="MobileNetV2 width multiplier")
    p.add_argument("--per-class", type=int, default=0, help="images per class (fashion; default 100)")
    p.add_argument("--out", type=Path, default=Path(".saga/bench-quality"))
    args = p.parse_args()
    root = args.out.resolve()
    root.mkdir(parents=True, exist_ok=True)
    services, optimizer = start_services(root)
    results = []
    try:
        for name in args.datasets.split(","):
            results.append(run_dataset(name, root, optimizer, args))
            (root / "results.json").write_text(json.dumps(results, indent=2))
    finally:
        services.send_signal(signal.SIGINT)
        services.wait(timeout=120)
    print("| dataset | train/test images | trials | study wall time | Saga best: test accuracy / macro-F1 "
          "| majority class | logistic regression 16x16 px: acc / F1 | SVC raw pixels: acc / F1 |")
    for r in results:
        print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
