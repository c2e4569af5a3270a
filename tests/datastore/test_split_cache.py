"""The trainer's local cache: cold sync downloads and verifies, warm sync stays off the network,
corruption on disk or in the store is caught."""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from datastore import IntegrityError, Manifest, ObjectStore
from datastore.cache import object_path, sync_split
from datastore.synth import synthesize
from datastore.upload import upload_dataset


@pytest.fixture
def dataset(tmp_path_factory: pytest.TempPathFactory, store: ObjectStore) -> Manifest:
    src = tmp_path_factory.mktemp("src")
    synthesize(src, classes=2, per_class=10, size=32, seed=4)
    return upload_dataset(src, store, split="0.6,0.4", seed=0)


def _count_gets(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    gets: list[str] = []
    original = store.get_file
    lock = threading.Lock()

    def counting(key: str, path) -> None:
        with lock:
            gets.append(key)
        original(key, path)

    monkeypatch.setattr(store, "get_file", counting)
    return gets


def test_cold_then_warm_sync(store: ObjectStore, dataset: Manifest, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    gets = _count_gets(store, monkeypatch)
    progress: list[tuple[int, int, int]] = []
    cold = sync_split(store, dataset, "train", tmp_path / "cache",
                      progress=lambda *event: progress.append(event))
    train = dataset.items_in("train")
    assert len(cold) == len(train) == 12 and len(gets) == 12
    assert progress[-1] == (12, 12, 12)
    for (path, label), item in zip(cold, train):
        assert label == item.label and path == object_path(tmp_path / "cache", item)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item.sha256
        assert path.parent.name == item.sha256[:2] and path.suffix == ".jpg"
    gets.clear()
    warm = sync_split(store, dataset, "train", tmp_path / "cache")
    assert warm == cold and gets == []
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if ".saga-tmp-" in p.name]
    assert leftovers == []


def test_corrupted_cache_file_is_refetched(store: ObjectStore, dataset: Manifest, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cached = sync_split(store, dataset, "validation", tmp_path)
    victim, intact = cached[0].path, cached[1].path
    original = victim.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF  # same size: only the hash can tell
    victim.write_bytes(bytes(damaged))
    os.utime(intact)  # touched but intact: re-hashed locally, not downloaded
    gets = _count_gets(store, monkeypatch)
    sync_split(store, dataset, "validation", tmp_path)
    assert gets == [dataset.items_in("validation")[0].key]
    assert victim.read_bytes() == original


def test_object_changed_in_store_is_an_integrity_error(store: ObjectStore, dataset: Manifest,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    item = dataset.items_in("validation")[0]
    store.put_bytes(item.key, b"tampered")
    gets = _count_gets(store, monkeypatch)
    with pytest.raises(IntegrityError, match=item.sha256):
        sync_split(store, dataset, "validation", tmp_path, workers=1)
    assert gets.count(item.key) == 2  # one retry, then a clear error
    assert not object_path(tmp_path, item).exists()


def test_unknown_split_is_refused(store: ObjectStore, dataset: Manifest, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no split 'test'"):
        sync_split(store, dataset, "test", tmp_path)


def test_concurrent_syncs_share_one_cache(store: ObjectStore, dataset: Manifest, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers on one node: each gets a complete, verified split, objects fetched once."""
    gets = _count_gets(store, monkeypatch)
    results: list[list] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(sync_split(store, dataset, "train", tmp_path))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results[0] == results[1]
    assert sorted(gets) == sorted(item.key for item in dataset.items_in("train"))
