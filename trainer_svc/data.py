"""Getting a dataset split onto local disk: ``(local path, class index)`` pairs plus class names.

The sync itself belongs to :mod:`datastore` (``datastore.cache.sync_split``: manifest, sha256
checks, a cache shared by trials). :func:`fetch_split` is the one place the trainer calls it,
so a worker or a test can swap in another :data:`SplitFetcher`. Until that module is present,
a plain manifest download stands in.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datastore.manifest import load_manifest
from datastore.store import ObjectStore
from trainer_svc.errors import DatasetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitFiles:
    """One split on local disk."""

    items: list[tuple[str, int]]  # (local path, class index)
    class_names: list[str]


SplitFetcher = Callable[[ObjectStore, str, Path], SplitFiles]
"""``(dataset store, split name, cache dir) -> SplitFiles``."""


def fetch_split(dataset: ObjectStore, split: str, cache_dir: Path) -> SplitFiles:
    """The images of ``split`` of the dataset rooted at ``dataset``, synced into ``cache_dir``."""
    try:
        from datastore.cache import sync_split  # lands separately; see module docstring
    except ImportError:
        return _download_split(dataset, split, cache_dir)
    synced = sync_split(dataset, split, cache_dir)
    return SplitFiles(items=[(str(p), int(i)) for p, i in synced.items],
                      class_names=list(synced.class_names))


def _download_split(dataset: ObjectStore, split: str, cache_dir: Path) -> SplitFiles:
    manifest = load_manifest(dataset)
    try:
        entries = manifest.items_in(split)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    items = []
    for entry in entries:
        local = cache_dir.joinpath(*entry.key.split("/"))
        if not (local.is_file() and _sha256(local) == entry.sha256):
            local.parent.mkdir(parents=True, exist_ok=True)
            dataset.get_file(entry.key, local)
            if _sha256(local) != entry.sha256:
                raise DatasetError(f"{entry.key}: content does not match the manifest's sha256")
        items.append((str(local), manifest.class_index(entry.label)))
    log.info("split %s: %d images in %d classes", split, len(items), len(manifest.classes))
    return SplitFiles(items=items, class_names=list(manifest.classes))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
