"""Uploading folder-per-class trees: manifest, stratified/grouped splits, skipping, idempotency."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import pytest

from datastore import Manifest, ObjectStore, load_manifest, open_store
from datastore.synth import VIDEO_GROUP_REGEX, synthesize
from datastore.upload import DatasetError, upload_dataset


@pytest.fixture(scope="module")
def kvasir_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 20 images, 3 corrupt files, a text file, a hidden file and a stray root file."""
    root = tmp_path_factory.mktemp("kvasir")
    synthesize(root, classes=3, per_class=20, size=32, seed=1, corrupt=3)
    (root / "polyp" / "notes.txt").write_text("not an image")
    (root / "ulcer" / ".DS_Store").write_bytes(b"\0\1")
    (root / "README.jpg").write_bytes(b"stray")
    return root


def _count_puts(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    puts: list[str] = []
    for name in ("put_bytes", "put_file"):
        original = getattr(store, name)

        def counting(key, data, _original=original):
            puts.append(key)
            return _original(key, data)

        monkeypatch.setattr(store, name, counting)
    return puts


def test_upload_writes_objects_and_manifest(kvasir_like: Path, store: ObjectStore) -> None:
    progress: list[tuple[str, int, int]] = []
    manifest = upload_dataset(kvasir_like, store, seed=7,
                              progress=lambda *event: progress.append(event))
    assert manifest.classes == ["polyp", "ulcer", "vessels"]
    assert len(manifest.items) == 60
    # Stratified 70/15/15 of 20 per class.
    for split, expected in (("train", 14), ("validation", 3), ("test", 3)):
        assert manifest.counts()[split] == {"polyp": expected, "ulcer": expected,
                                            "vessels": expected}
    skipped = {s.path: s.reason for s in manifest.skipped}
    corrupt = {p for p in skipped if "corrupt_" in p}
    assert len(corrupt) == 3
    assert {"polyp/notes.txt", "ulcer/.DS_Store", "README.jpg"} <= set(skipped)
    assert all("decodable" in skipped[p] or "empty" in skipped[p] for p in corrupt)
    # Every object is in the store with the recorded hash and size.
    item = manifest.items[0]
    data = store.get_bytes(item.key)
    assert hashlib.sha256(data).hexdigest() == item.sha256 and len(data) == item.size
    assert item.path == f"{item.label}/{Path(item.path).name}"
    assert len(list(store.list("images/"))) == 60
    assert load_manifest(store) == manifest
    assert progress[-1] == ("upload", 60, 60)
    assert ("check", 63, 63) in progress  # 60 images + 3 corrupt candidates


def test_second_upload_puts_nothing(kvasir_like: Path, store: ObjectStore,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first = upload_dataset(kvasir_like, store, seed=3)
    puts = _count_puts(store, monkeypatch)
    second = upload_dataset(kvasir_like, store, seed=3)
    assert puts == []
    assert second == first and second.sha256 == first.sha256


def test_split_is_deterministic_from_the_seed(kvasir_like: Path, tmp_path: Path) -> None:
    a = upload_dataset(kvasir_like, open_store(str(tmp_path / "a")), seed=11)
    b = upload_dataset(kvasir_like, open_store(str(tmp_path / "b")), seed=11)
    c = upload_dataset(kvasir_like, open_store(str(tmp_path / "c")), seed=12)
    assert a.to_json() == b.to_json()
    assert [i.split for i in a.items] != [i.split for i in c.items]
    assert a.sha256 != c.sha256


def test_two_fraction_split_has_no_test_set(kvasir_like: Path, tmp_path: Path) -> None:
    manifest = upload_dataset(kvasir_like, open_store(str(tmp_path / "s")), split="0.7,0.3")
    assert manifest.splits == ["train", "validation"]
    assert manifest.counts() == {"train": {c: 14 for c in manifest.classes},
                                 "validation": {c: 6 for c in manifest.classes}}
    with pytest.raises(ValueError, match="train, validation"):
        manifest.items_in("test")


def test_group_by_keeps_each_video_in_one_split(tmp_path: Path, store: ObjectStore) -> None:
    src = tmp_path / "nerthus"
    synthesize(src, classes=3, per_class=30, size=32, seed=2, videos=6)
    manifest = upload_dataset(src, store, group_by=VIDEO_GROUP_REGEX, seed=5)
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for item in manifest.items:
        splits_of_group[item.group].add(item.split)
    assert len(splits_of_group) == 18
    assert all(len(splits) == 1 for splits in splits_of_group.values())
    # Still stratified: every split holds every class (6 videos per class: 4/1/1).
    for split, per_class in manifest.counts().items():
        assert all(count > 0 for count in per_class.values()), (split, per_class)
    assert manifest.group_by == VIDEO_GROUP_REGEX
    assert load_manifest(store) == manifest


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "0.5,0.6"}, "sum to 1"),
    ({"split": "0.7,0.1,0.1,0.1"}, "2 .* or 3"),
    ({"split": "a,b"}, "comma-separated"),
    ({"group_by": "(unclosed"}, "regular expression"),
])
def test_bad_options_are_refused(kvasir_like: Path, tmp_path: Path, kwargs: dict,
                                 message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        upload_dataset(kvasir_like, open_store(str(tmp_path / "s")), **kwargs)


def test_a_single_class_is_not_a_dataset(tmp_path: Path) -> None:
    synthesize(tmp_path / "src", classes=2, per_class=2, size=32)
    for path in (tmp_path / "src" / "ulcer").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(DatasetError, match="at least 2"):
        upload_dataset(tmp_path / "src", open_store(str(tmp_path / "s")))


def test_manifest_checks_what_it_reads(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s"))
    with pytest.raises(ValueError, match="saga data upload"):
        load_manifest(store)
    good = Manifest(classes=["a", "b"], items=[], seed=0, split_fractions={"train": .7,
                                                                            "validation": .3})
    text = good.to_json().decode()
    assert Manifest.from_json(text) == good
    for broken in ("{", "[]", text.replace('"seed": 0', '"seed": "x"'),
                   text.replace('"items": []', '"items": [{"key": "../x", "sha256": "0", '
                                '"label": "a", "size": 1, "path": "a/x", "split": "train"}]')):
        with pytest.raises(ValueError):
            Manifest.from_json(broken)
