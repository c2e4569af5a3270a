"""The trainer's local copy of a dataset split, content-addressed by sha256.

Layout: ``cache_dir/objects/ab/abcdef....jpg`` plus a sidecar ``....jpg.ok`` written after the
file's hash was verified. The sidecar records the file's size and mtime at that moment, so a warm
sync trusts an unchanged file without re-hashing the whole dataset for every trial, yet any later
write to the file (a partial copy, a tool that edited it) changes its mtime and triggers a re-hash,
then a re-download if the hash is wrong. Files only ever appear by ``os.replace`` of a verified
temp file in the same directory, so workers sharing a node never see partial files; an ``fcntl``
lock around a sync keeps them from downloading the same objects twice.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from datastore.keys import TEMP_MARKER
from datastore.local_store import atomic_write
from datastore.manifest import Item, Manifest
from datastore.store import IntegrityError, ObjectStore

try:  # POSIX only; elsewhere concurrent syncs may download twice, which is still correct.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
# (done, total, downloaded so far)
SyncProgress = Callable[[int, int, int], None]


class CachedItem(NamedTuple):
    """A cached image and its label (class name; ``Manifest.class_index`` gives the index)."""

    path: Path
    label: str


def object_path(cache_dir: str | Path, item: Item) -> Path:
    """Where ``item`` lives in the cache (the extension keeps decoders and humans happy)."""
    ext = item.key.rsplit(".", 1)[-1] if "." in item.key.rsplit("/", 1)[-1] else "bin"
    return Path(cache_dir) / "objects" / item.sha256[:2] / f"{item.sha256}.{ext}"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".ok")


def _stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_marker(path: Path) -> None:
    data = json.dumps(_stamp(path)).encode()
    atomic_write(_marker(path), lambda handle: handle.write(data))


def _trusted(path: Path, item: Item) -> bool:
    try:
        return json.loads(_marker(path).read_bytes()) == _stamp(path) and \
            path.stat().st_size == item.size
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _node_lock(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(cache_dir / ".lock", "a+b") as handle:
        # Blocks while another worker syncs; the OS drops the lock if that worker dies.
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _download(store: ObjectStore, item: Item, path: Path) -> None:
    """Fetches ``item`` into a temp file beside ``path``, verifies it, then moves it in place.
    A hash mismatch is retried once (a flaky proxy); a second one is an IntegrityError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        tmp = path.with_name(f"{TEMP_MARKER}{uuid.uuid4().hex}-{path.name}")
        try:
            store.get_file(item.key, tmp)
            actual = _sha256_file(tmp)
            if actual == item.sha256:
                os.replace(tmp, path)
                _write_marker(path)
                return
        finally:
            tmp.unlink(missing_ok=True)
        log.warning("%s: sha256 mismatch after download (attempt %d)", item.key, attempt)
    raise IntegrityError(f"{store.uri_for(item.key)} has sha256 {actual}, but the manifest says "
                         f"{item.sha256}; the dataset in the store was modified after upload "
                         "(upload it again)")


def sync_item(store: ObjectStore, item: Item, cache_dir: str | Path) -> str:
    """Makes ``item`` present and verified in the cache; returns what it took:
    ``"cached"``, ``"rehashed"`` (no network) or ``"downloaded"``."""
    path = object_path(cache_dir, item)
    if path.is_file():
        if _trusted(path, item):
            return "cached"
        if _sha256_file(path) == item.sha256:
            _write_marker(path)
            return "rehashed"
        log.warning("cached %s is corrupt; fetching it again", path)
        path.unlink(missing_ok=True)
    _download(store, item, path)
    return "downloaded"


def sync_split(store: ObjectStore, manifest: Manifest, split: str, cache_dir: str | Path, *,
               progress: SyncProgress | None = None, workers: int = 8) -> list[CachedItem]:
    """Makes every image of ``split`` available locally; returns ``(local_path, label)`` pairs in
    manifest order. ``store`` is the dataset root (where ``manifest.json`` is).

    A warm cache does no network I/O for objects already present and verified. Raises ValueError
    for an unknown split, IntegrityError when an object's content does not match its sha256, and
    the store's errors (StoreUnavailable...) when objects cannot be fetched.
    """
    items = manifest.items_in(split)
    root = Path(cache_dir)
    counts = {"cached": 0, "rehashed": 0, "downloaded": 0}
    with _node_lock(root), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # Many small objects: parallel GETs hide the per-request latency of S3.
        outcomes = pool.map(lambda item: sync_item(store, item, root), items)
        for done, outcome in enumerate(outcomes, start=1):
            counts[outcome] += 1
            if progress is not None:
                progress(done, len(items), counts["downloaded"])
    log.info("synced split %s of %s: %d downloaded, %d re-verified, %d cached", split, store.uri,
             counts["downloaded"], counts["rehashed"], counts["cached"])
    return [CachedItem(object_path(root, item), item.label) for item in items]
