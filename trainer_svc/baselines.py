"""What a trial must beat: baselines on the same splits, and the comparison users see.

Two baselines, computed once per dataset and split by each worker (cached in its cache folder,
keyed by the content of the splits) and reported with every trial's metrics under
``baseline_<name>_<split>_<metric>``:

- ``majority``: always the most frequent class of the training split (chance level);
- ``pixels``: logistic regression (scikit-learn) on the training split's images downsampled to
  16 x 16 RGB pixels, what a person gets in five lines.

:func:`compare` puts a trial's held-out metrics beside them for ``saga study best`` and the report,
with a warning when the trial does not beat them or is near chance. It imports nothing heavy, so
clients can use it; :func:`dataset_baselines` (the trainer's side) imports scikit-learn and PIL.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "baseline_"
BASELINES = {"majority": "majority class (chance)",
             "pixels": "logistic regression on 16x16 pixels"}
PIXELS = 16                 # side of the downsampled image the pixel baseline sees
MAX_TRAIN_IMAGES = 5000     # keeps the pixel baseline to seconds on a Kvasir-sized split
# A trial within this fraction of the way from chance to perfect is "near chance".
NEAR_CHANCE = 0.1
_SPLIT_PREFIX = {"validation": "val", "test": "test"}
_VERSION = 1                # bump when the baselines change, so caches are recomputed


def metric_key(baseline: str, split: str, metric: str) -> str:
    """``baseline_pixels_test_accuracy``: the trial-metrics key of one baseline number."""
    return f"{PREFIX}{baseline}_{_SPLIT_PREFIX.get(split, split)}_{metric}"


def dataset_baselines(splits: Mapping[str, Any], cache_dir: Path, seed: int = 0) -> dict[str, float]:
    """The baselines' metrics for ``splits`` (role -> ``SplitFiles``: ``train`` plus ``validation``
    and/or ``test``), from ``cache_dir`` when this worker computed them before."""
    key = _cache_key(splits, seed)
    path = Path(cache_dir) / "baselines" / f"{key}.json"
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        pass
    metrics = compute_baselines(splits, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{id(metrics)}.tmp")
    tmp.write_text(json.dumps(metrics, sort_keys=True))
    tmp.replace(path)
    return metrics


def compute_baselines(splits: Mapping[str, Any], seed: int = 0) -> dict[str, float]:
    """Fits both baselines on ``splits["train"]`` and scores them on the other splits."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = _subsample(splits["train"].items, MAX_TRAIN_IMAGES, seed)
    y_train = np.array([label for _, label in train])
    majority = int(np.bincount(y_train).argmax())
    pixels = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pixels.fit(_pixels([p for p, _ in train]), y_train)
    metrics: dict[str, float] = {}
    for split, files in splits.items():
        if split == "train" or not files.items:
            continue
        y = np.array([label for _, label in files.items])
        predictions = {"majority": np.full_like(y, majority),
                       "pixels": pixels.predict(_pixels([p for p, _ in files.items]))}
        for name, pred in predictions.items():
            metrics[metric_key(name, split, "accuracy")] = float(accuracy_score(y, pred))
            metrics[metric_key(name, split, "macro_f1")] = float(
                f1_score(y, pred, average="macro", zero_division=0))
    return metrics


def _pixels(paths: Sequence[str]) -> Any:
    import numpy as np
    from PIL import Image

    rows = []
    for path in paths:
        with Image.open(path) as image:
            image.seek(0)
            image.draft("RGB", (4 * PIXELS, 4 * PIXELS))  # JPEG: decode at a reduced scale, much faster
            small = image.convert("RGB").resize((PIXELS, PIXELS), Image.Resampling.BILINEAR)
            rows.append(np.asarray(small, dtype=np.float32).reshape(-1) / 255.0)
    return np.stack(rows)


def _subsample(items: Sequence[tuple[str, int]], limit: int, seed: int) -> list[tuple[str, int]]:
    if len(items) <= limit:
        return list(items)
    import numpy as np
    chosen = np.random.default_rng(seed).choice(len(items), size=limit, replace=False)
    return [items[i] for i in sorted(chosen)]


def _cache_key(splits: Mapping[str, Any], seed: int) -> str:
    # Cached files are named by their sha256 (datastore.cache), so names and labels are content.
    digest = hashlib.sha256(f"v{_VERSION} seed {seed}\n".encode())
    for role in sorted(splits):
        digest.update(f"[{role}]\n".encode())
        for path, label in sorted((Path(p).name, label) for p, label in splits[role].items):
            digest.update(f"{path} {label}\n".encode())
    return digest.hexdigest()[:32]


@dataclass
class Comparison:
    """A trial beside the baselines on one split: lines to print and warnings."""

    split: str                                     # "test" (held out) or "validation"
    trial: dict[str, float]                        # accuracy, macro_f1 of the trial
    baselines: dict[str, dict[str, float]]         # baseline -> {accuracy, macro_f1}
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """``saga study best``'s block: one line per model, then the warnings."""
        def row(name: str, m: Mapping[str, float]) -> str:
            f1 = f"  macro-F1 {m['macro_f1']:.3f}" if "macro_f1" in m else ""
            return f"  {name:<40} accuracy {m.get('accuracy', float('nan')):.3f}{f1}"
        out = [f"{self.split} split, beside baselines on the same splits:",
               row("best trial", self.trial)]
        out += [row(BASELINES[name], m) for name, m in self.baselines.items()]
        return out + [f"WARNING: {w}" for w in self.warnings]


def compare(metrics: Mapping[str, float]) -> Comparison | None:
    """The trial's held-out (else validation) accuracy and macro-F1 beside the baselines in its
    metrics; None when the trial carries no baselines (a trainer older than them)."""
    for split, prefix in (("test", "test"), ("validation", "val")):
        baselines = {name: {m: metrics[metric_key(name, split, m)] for m in ("accuracy", "macro_f1")
                            if metric_key(name, split, m) in metrics} for name in BASELINES}
        baselines = {name: m for name, m in baselines.items() if "accuracy" in m}
        if f"{prefix}_accuracy" in metrics and baselines:
            break
    else:
        return None
    trial = {"accuracy": metrics[f"{prefix}_accuracy"]}
    if f"{prefix}_macro_f1" in metrics:
        trial["macro_f1"] = metrics[f"{prefix}_macro_f1"]
    result = Comparison(split=split, trial=trial, baselines=baselines)
    acc = trial["accuracy"]
    chance = baselines.get("majority", {}).get("accuracy")
    if chance is not None and acc < chance + NEAR_CHANCE * (1.0 - chance):
        result.warnings.append(f"the best trial is near chance: {split} accuracy {acc:.3f}, "
                               f"majority class {chance:.3f}; it has not learnt the task")
    for name, m in baselines.items():
        if name != "majority" and acc <= m["accuracy"]:
            result.warnings.append(f"the best trial does not beat {BASELINES[name]}: {split} accuracy "
                                   f"{acc:.3f} <= {m['accuracy']:.3f}")
    return result
