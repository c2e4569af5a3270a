"""``upload_dataset``: a folder-per-class image tree becomes objects plus ``manifest.json``.

Objects are content-addressed (``images/<sha256>.<ext>``), so uploading the same folder again
puts nothing: existing objects are found by one listing, and the manifest is rewritten only if
its bytes changed.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from datastore.manifest import Item, Manifest, Skipped, save_manifest
from datastore.scan import CheckedImage, check_image, find_files
from datastore.splits import assign_splits, parse_split
from datastore.store import ObjectStore, StoreError

log = logging.getLogger(__name__)
IMAGES_PREFIX = "images/"
# (stage, done, total): stages are "check" and "upload".
Progress = Callable[[str, int, int], None]


class DatasetError(ValueError):
    """The source folder cannot become a dataset (no classes, bad options...)."""


def group_of(pattern: re.Pattern[str], rel_path: str) -> str:
    """The group of a relative path: group 1 of the first match if the pattern has one, else the
    whole match; a path that does not match is its own group (it stays stratified, ungrouped)."""
    match = pattern.search(rel_path)
    if match is None:
        return f"#unmatched:{rel_path}"
    return match.group(1) if pattern.groups else match.group(0)


def upload_dataset(src: str | Path, store: ObjectStore, *,
                   split: str | Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0,
                   group_by: str | None = None, progress: Progress | None = None,
                   workers: int = 4) -> Manifest:
    """Checks every image under ``src``, uploads new ones and writes the manifest.

    ``split``: 2 or 3 fractions (train, validation[, test]). ``group_by``: a regex applied to each
    file's path relative to ``src``; files of one group (e.g. the frames of one video) share a
    split. Files that are not decodable JPEG/PNG/BMP images are listed in ``Manifest.skipped``,
    never fatal. Raises DatasetError for bad options or fewer than two usable classes.
    """
    fractions = _parse_fractions(split)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"seed must be an integer, got {seed!r}")
    pattern = _compile(group_by)
    report = progress or (lambda stage, done, total: None)

    candidates, skipped = find_files(Path(src))
    checked: list[CheckedImage] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, result in enumerate(pool.map(check_image, candidates), start=1):
            if isinstance(result, Skipped):
                skipped.append(result)
                log.warning("skipping %s: %s", result.path, result.reason)
            else:
                checked.append(result)
            report("check", done, len(candidates))
    classes = sorted({image.candidate.label for image in checked})
    if len(classes) < 2:
        raise DatasetError(f"{src} has {len(classes)} class folder(s) with usable images; "
                           "a classifier needs at least 2 (layout: SRC/<class>/<images>)")

    rels = [image.candidate.rel for image in checked]
    groups = [group_of(pattern, rel) for rel in rels] if pattern else None
    splits = assign_splits([image.candidate.label for image in checked], fractions, seed, groups)
    items = [Item(key=f"{IMAGES_PREFIX}{image.sha256}.{image.ext}", sha256=image.sha256,
                  label=image.candidate.label, size=image.size, path=image.candidate.rel,
                  split=split_name, group=groups[i] if groups else None)
             for i, (image, split_name) in enumerate(zip(checked, splits))]
    _upload_missing(store, checked, items, report, workers)
    manifest = Manifest(classes=classes, items=items, seed=seed, split_fractions=fractions,
                        group_by=group_by, skipped=sorted(skipped, key=lambda s: s.path))
    if save_manifest(store, manifest):
        log.info("wrote manifest %s (%d items)", store.uri_for("manifest.json"), len(items))
    return manifest


def _upload_missing(store: ObjectStore, checked: list[CheckedImage], items: list[Item],
                    report: Progress, workers: int) -> None:
    present = set(store.list(IMAGES_PREFIX))  # one listing instead of a HEAD per image
    todo: dict[str, CheckedImage] = {}
    for image, item in zip(checked, items):
        if item.key not in present:
            todo.setdefault(item.key, image)  # identical files in two folders: upload once

    def put(entry: tuple[str, CheckedImage]) -> None:
        key, image = entry
        data = image.candidate.path.read_bytes()
        # Upload exactly the bytes that were checked: a file edited meanwhile would break the
        # manifest's promise that the object's sha256 is the recorded one.
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise StoreError(f"{image.candidate.rel} changed during the upload; run it again")
        store.put_bytes(key, data)

    report("upload", 0, len(todo))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, _ in enumerate(pool.map(put, sorted(todo.items())), start=1):
            report("upload", done, len(todo))


def _parse_fractions(split: str | Sequence[float]) -> dict[str, float]:
    try:
        return parse_split(split)
    except (TypeError, ValueError) as exc:
        raise DatasetError(str(exc)) from exc


def _compile(group_by: str | None) -> re.Pattern[str] | None:
    if group_by is None or group_by == "":
        return None
    try:
        return re.compile(group_by)
    except re.error as exc:
        raise DatasetError(f"--group-by {group_by!r} is not a valid regular expression: {exc}") \
            from exc
