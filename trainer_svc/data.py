"""Getting a dataset split onto local disk: ``(local path, class index)`` pairs plus class names.

The sync itself belongs to :mod:`datastore.cache` (manifest, sha256 checks, a cache shared by
the trials of a node). :func:`fetch_split` is the one place the trainer calls it, so a worker or
a test can swap in another :data:`SplitFetcher`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datastore.cache import sync_split
from datastore.manifest import MANIFEST_KEY, ManifestError, load_manifest
from datastore.store import ObjectStore
from trainer_svc.errors import DatasetError


@dataclass(frozen=True)
class SplitFiles:
    """One split on local disk."""

    items: list[tuple[str, int]]  # (local path, class index)
    class_names: list[str]


SplitFetcher = Callable[[ObjectStore, str, Path], SplitFiles]
"""``(dataset store, split name, cache dir) -> SplitFiles``."""


def fetch_split(dataset: ObjectStore, split: str, cache_dir: Path) -> SplitFiles:
    """The images of ``split`` of the dataset rooted at ``dataset``, synced into ``cache_dir``.

    DatasetError when the manifest is missing or unusable or has no such split; the store's
    own errors (unavailable, integrity) propagate so the worker can retry the trial.
    """
    try:
        manifest = load_manifest(dataset)
        cached = sync_split(dataset, manifest, split, cache_dir)
    except ManifestError as exc:
        raise DatasetError(f"dataset {dataset.uri}: {exc}") from None
    except ValueError as exc:  # unknown split, named by the manifest
        if exc.__class__ is not ValueError:
            raise
        raise DatasetError(f"dataset {dataset.uri}: {exc}") from None
    return SplitFiles(items=[(str(c.path), manifest.class_index(c.label)) for c in cached],
                      class_names=list(manifest.classes))


def check_manifest(dataset: ObjectStore, sha256: str) -> None:
    """DatasetError unless the dataset's manifest is still the one its study pinned at creation:
    every trial of a study must see the same data and split."""
    try:
        current = load_manifest(dataset).sha256
    except ManifestError as exc:
        raise DatasetError(f"dataset {dataset.uri}: {exc}") from None
    if current != sha256:
        raise DatasetError(f"dataset {dataset.uri} changed under the study: its {MANIFEST_KEY} has sha256 "
                           f"{current[:12]}…, the study pinned {sha256[:12]}… at creation; "
                           "create a new study for the new data")
