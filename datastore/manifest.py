"""The dataset manifest: ``manifest.json`` at a dataset's root in the object store.

It lists every image object with its sha256, label, size, original path and split, the classes
(sorted; a label's index in ``classes`` is its class index), the seed and split fractions that
made the split, and the files that were skipped. Every trial of a study reads the same manifest,
so every trial sees the same split; ``Manifest.sha256`` identifies it in model cards.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from datastore.keys import validate_key
from datastore.store import InvalidKey, ObjectNotFound, ObjectStore, StoreError

MANIFEST_KEY = "manifest.json"
FORMAT = "saga.dataset/v1"
SPLIT_NAMES = ("train", "validation", "test")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(StoreError, ValueError):
    """The manifest is missing, not JSON, or does not follow the format."""


@dataclass(frozen=True)
class Item:
    """One image: its object ``key`` (relative to the dataset root), content hash and label."""

    key: str
    sha256: str
    label: str
    size: int
    path: str  # relative path in the source folder, '/'-separated
    split: str
    group: str | None = None  # the --group-by group (e.g. the video), when grouping was used


@dataclass(frozen=True)
class Skipped:
    """A file in the source folder that is not in the dataset, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    """A dataset: classes, items with their splits, and how the split was made."""

    classes: list[str]
    items: list[Item]
    seed: int
    split_fractions: dict[str, float]
    group_by: str | None = None
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def splits(self) -> list[str]:
        """The split names this dataset has, in order (``train``, ``validation``[, ``test``])."""
        return list(self.split_fractions)

    def has_split(self, split: str) -> bool:
        return split in self.split_fractions

    def items_in(self, split: str) -> list[Item]:
        """The items of ``split``; ValueError naming the available splits if it has none such."""
        if split not in self.split_fractions:
            raise ValueError(f"dataset has no split {split!r}; its splits are "
                             f"{', '.join(self.split_fractions)}")
        return [item for item in self.items if item.split == split]

    def class_index(self, label: str) -> int:
        return self.classes.index(label)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {class: number of items}}``, for summaries and tests."""
        table = {s: {c: 0 for c in self.classes} for s in self.split_fractions}
        for item in self.items:
            table[item.split][item.label] += 1
        return table

    def to_json(self) -> bytes:
        """Canonical bytes: the same dataset always serializes identically (idempotent uploads)."""
        doc = {"format": FORMAT, "classes": self.classes, "seed": self.seed,
               "split_fractions": self.split_fractions, "group_by": self.group_by,
               "items": [asdict(item) for item in self.items],
               "skipped": [asdict(skip) for skip in self.skipped]}
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")

    @property
    def sha256(self) -> str:
        """Hash of the canonical manifest bytes; names this exact dataset and split."""
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "manifest") -> "Manifest":
        """Parses and checks a manifest; ManifestError names the field that is wrong."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{source} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ManifestError(f"{source} must be a JSON object")
        if doc.get("format") != FORMAT:
            raise ManifestError(f"{source}: format is {doc.get('format')!r}, expected {FORMAT!r}")
        try:
            classes = [str(c) for c in _field(doc, "classes", list, source)]
            raw_fractions = _field(doc, "split_fractions", dict, source)
            # JSON keys are stored sorted; give the splits back in their natural order.
            fractions = {str(k): float(v) for k, v in sorted(
                raw_fractions.items(),
                key=lambda kv: (SPLIT_NAMES.index(kv[0]) if kv[0] in SPLIT_NAMES else 99, kv[0]))}
            items = [Item(**_item_fields(raw)) for raw in _field(doc, "items", list, source)]
            skipped = [Skipped(**raw) for raw in doc.get("skipped", [])]
            seed = int(_field(doc, "seed", int, source))
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{source}: malformed entry: {exc}") from exc
        for item in items:
            _check_item(item, source)
            if item.label not in classes:
                raise ManifestError(f"{source}: item {item.key!r} has unknown label {item.label!r}")
            if item.split not in fractions:
                raise ManifestError(f"{source}: item {item.key!r} has unknown split {item.split!r}")
        return cls(classes=classes, items=items, seed=seed, split_fractions=fractions,
                   group_by=doc.get("group_by"), skipped=skipped)


def _field(doc: dict[str, Any], name: str, kind: type, source: str) -> Any:
    if name not in doc:
        raise ManifestError(f"{source}: missing field {name!r}")
    if not isinstance(doc[name], kind):
        raise ManifestError(f"{source}: field {name!r} must be a {kind.__name__}")
    return doc[name]


def _check_item(item: Item, source: str) -> None:
    # Keys and hashes become store keys and cache file names: check them before anyone uses them.
    try:
        validate_key(item.key)
    except InvalidKey as exc:
        raise ManifestError(f"{source}: {exc}") from exc
    if not isinstance(item.sha256, str) or not _SHA256.match(item.sha256):
        raise ManifestError(f"{source}: item {item.key!r} has a malformed sha256")
    if not isinstance(item.size, int) or item.size < 0:
        raise ManifestError(f"{source}: item {item.key!r} has a malformed size")


def _item_fields(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TypeError("item must be an object")
    known = {"key", "sha256", "label", "size", "path", "split", "group"}
    return {k: v for k, v in raw.items() if k in known}


def load_manifest(store: ObjectStore) -> Manifest:
    """Reads ``manifest.json`` from the dataset root ``store``; ManifestError when absent."""
    try:
        data = store.get_bytes(MANIFEST_KEY)
    except ObjectNotFound as exc:
        raise ManifestError(f"no {MANIFEST_KEY} in {store.uri}; upload the dataset first "
                            "(saga data upload SRC DATASET_URI)") from exc
    return Manifest.from_json(data, source=store.uri_for(MANIFEST_KEY))


def save_manifest(store: ObjectStore, manifest: Manifest) -> bool:
    """Writes the manifest unless the stored one is byte-identical; returns whether it wrote."""
    data = manifest.to_json()
    try:
        if store.get_bytes(MANIFEST_KEY) == data:
            return False
    except ObjectNotFound:
        pass
    store.put_bytes(MANIFEST_KEY, data)
    return True
