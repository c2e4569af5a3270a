"""Moving files between the object store and a worker's scratch directory."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datastore.store import ObjectNotFound, ObjectStore
from trainer_svc.errors import InvalidTask

StoreOpener = Callable[[str], ObjectStore]
"""Opens the store rooted at a URI (``datastore.open_store`` in a worker)."""

# Artifact names the optimizer and exporter look up (docs/TRIAL_TASK.md).
CHECKPOINT = "checkpoint"
HEAD_CHECKPOINT = "head_checkpoint"
HISTORY = "history"
TENSORBOARD = "tensorboard"
METRICS = "metrics"


def download_object(open_store: StoreOpener, uri: str, dest_dir: Path, field: str) -> Path:
    """Downloads the object at ``uri`` into ``dest_dir`` (keeping its file name)."""
    parent, sep, name = uri.rstrip("/").rpartition("/")
    if not sep or not name or not parent or parent.endswith(":/"):
        raise InvalidTask(field, f"{uri!r} is not an object URI (store/prefix/name)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    local = dest_dir / name
    try:
        open_store(parent).get_file(name, local)
    except ObjectNotFound:
        raise InvalidTask(field, f"no object at {uri!r}") from None
    return local


def upload_artifacts(store: ObjectStore, files: dict[str, Path | None],
                     metrics: dict[str, Any]) -> dict[str, str]:
    """Uploads each named file (a folder goes up recursively under its own name) and
    ``metrics.json``; returns artifact name -> object URI. ``None`` entries are skipped."""
    uris: dict[str, str] = {}
    for name, path in files.items():
        if path is None or not path.exists():
            continue
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                store.put_file(f"{path.name}/{file.relative_to(path).as_posix()}", file)
            uris[name] = store.uri_for(path.name)
        else:
            uris[name] = store.put_file(path.name, path)
    body = json.dumps(metrics, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")
    uris[METRICS] = store.put_bytes("metrics.json", body)
    return uris
