"""Fixtures of the trainer tests: tiny synthetic image datasets on disk and in a local store."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from datastore.local_store import LocalStore  # noqa: E402
from datastore.manifest import Item, Manifest, save_manifest  # noqa: E402
from trainer_svc.progress import Decision  # noqa: E402

CLASSES = ["blue", "green", "red"]
FORMATS = ["png", "jpg", "bmp"]


def write_image(path: Path, label: int, rng: np.random.Generator, size: tuple[int, int] = (40, 48)) -> None:
    """A noisy image whose dominant channel is its class, so a tiny model can learn it."""
    pixels = rng.integers(0, 90, size=(*size, 3), dtype=np.uint8)
    pixels[..., 2 - label] = rng.integers(150, 255, size=size, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def make_split(root: Path, per_class: int, seed: int) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    items = []
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            path = root / name / f"{i}.{FORMATS[i % len(FORMATS)]}"
            write_image(path, label, rng)
            items.append((str(path), label))
    return items


@pytest.fixture(scope="session")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, int]]]:
    """``{"train": [(path, label)], "validation": [...], "test": [...]}``, 3 classes."""
    root = tmp_path_factory.mktemp("images")
    return {"train": make_split(root / "train", 10, 1),
            "validation": make_split(root / "validation", 4, 2),
            "test": make_split(root / "test", 4, 3)}


@pytest.fixture(scope="session")
def dataset_store(tmp_path_factory: pytest.TempPathFactory,
                  splits: dict[str, list[tuple[str, int]]]) -> LocalStore:
    """The same images uploaded to a local object store with a manifest."""
    store = LocalStore(tmp_path_factory.mktemp("store") / "datasets" / "tiny")
    items = []
    for split, files in splits.items():
        for path, label in files:
            key = f"{split}/{CLASSES[label]}/{Path(path).name}"
            store.put_file(key, path)
            data = Path(path).read_bytes()
            items.append(Item(key=key, sha256=hashlib.sha256(data).hexdigest(), label=CLASSES[label],
                              size=len(data), path=key, split=split))
    save_manifest(store, Manifest(classes=CLASSES, items=items, seed=0,
                                  split_fractions={"train": 0.6, "validation": 0.2, "test": 0.2}))
    return store


class ScriptedReporter:
    """A reporter answering from a script of decisions, recording every call."""

    def __init__(self, script: dict[tuple[str, int], Decision] | None = None) -> None:
        self.script = script or {}
        self.reports: list[tuple[str, int, dict[str, float]]] = []
        self.heartbeats = 0

    def report(self, step: str, epoch: int, metrics: dict[str, float]) -> Decision:
        self.reports.append((step, epoch, dict(metrics)))
        return self.script.get((step, epoch), Decision.CONTINUE)

    def heartbeat(self) -> None:
        self.heartbeats += 1


@pytest.fixture()
def reporter() -> ScriptedReporter:
    return ScriptedReporter()


@pytest.fixture(scope="session")
def scripted() -> type[ScriptedReporter]:
    """The ScriptedReporter class, for tests that script decisions."""
    return ScriptedReporter
