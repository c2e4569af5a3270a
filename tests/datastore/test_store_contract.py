"""The ObjectStore contract, run against the local directory and S3 (moto + minio client)."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from datastore import InvalidKey, ObjectNotFound, ObjectStore, open_store

BAD_KEYS = ["../x", "a/../../x", "/abs", "", "a//b", "a/", "./a", "a\\b", "a\nb"]


def test_put_get_roundtrip_and_uri(store: ObjectStore) -> None:
    uri = store.put_bytes("models/m1/model.keras", b"\x00\x01weights")
    assert uri == f"{store.uri}/models/m1/model.keras"
    assert store.get_bytes("models/m1/model.keras") == b"\x00\x01weights"
    assert store.exists("models/m1/model.keras")
    assert not store.exists("models/m1")  # a prefix is not an object


def test_put_file_get_file(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    store.put_file("blobs/in.bin", source)
    target = tmp_path / "out" / "copy.bin"
    store.get_file("blobs/in.bin", target)
    assert target.read_bytes() == source.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["copy.bin"]  # no temp files left


def test_list_is_recursive_sorted_and_prefix_filtered(store: ObjectStore) -> None:
    for key in ["b/2", "a/1", "a/sub/3", "ab", "c"]:
        store.put_bytes(key, key.encode())
    assert list(store.list()) == ["a/1", "a/sub/3", "ab", "b/2", "c"]
    assert list(store.list("a/")) == ["a/1", "a/sub/3"]
    assert list(store.list("a")) == ["a/1", "a/sub/3", "ab"]
    assert list(store.list("nothing/")) == []


def test_missing_object_raises_object_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        store.get_bytes("missing.txt")
    with pytest.raises(ObjectNotFound):
        store.get_file("missing.txt", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert not store.exists("missing.txt")
    assert list(store.list()) == []


def test_delete_removes_and_missing_delete_is_fine(store: ObjectStore) -> None:
    store.put_bytes("d/x", b"1")
    store.put_bytes("d/y", b"2")
    store.delete("d/x")
    store.delete("d/x")
    store.delete("never/was")
    assert not store.exists("d/x")
    assert list(store.list()) == ["d/y"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused_everywhere(store: ObjectStore, key: str) -> None:
    for call in (lambda: store.put_bytes(key, b"x"), lambda: store.get_bytes(key),
                 lambda: store.exists(key), lambda: store.delete(key)):
        with pytest.raises(InvalidKey):
            call()
    assert list(store.list()) == []


def test_overwrite_is_atomic_for_concurrent_readers(store: ObjectStore) -> None:
    old, new = b"A" * 300_000, b"B" * 300_000
    store.put_bytes("obj", old)
    seen: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(store.get_bytes("obj"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(5):
            store.put_bytes("obj", new)
            store.put_bytes("obj", old)
        store.put_bytes("obj", new)
    finally:
        stop.set()
        reader.join()
    assert seen and all(data in (old, new) for data in seen)
    assert store.get_bytes("obj") == new
    assert list(store.list()) == ["obj"]  # no temp files visible


def test_store_opened_twice_sees_the_same_objects(store: ObjectStore) -> None:
    store.put_bytes("shared/k", b"v")
    again = open_store(store.uri)
    assert again.get_bytes("shared/k") == b"v"
    child = open_store(store.uri_for("shared"))
    assert list(child.list()) == ["k"]


def test_secrets_never_in_repr_or_logs(s3_uri: str, s3_environ: dict[str, str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    secret = s3_environ["SAGA_S3_SECRET_KEY"]
    caplog.set_level(logging.DEBUG)
    store = open_store(s3_uri)
    store.put_bytes("k", b"v")
    store.get_bytes("k")
    with pytest.raises(ObjectNotFound) as missing:
        store.get_bytes("nope")
    assert secret not in repr(store) and secret not in str(store)
    assert secret not in str(missing.value)
    assert secret not in caplog.text
    assert s3_environ["SAGA_S3_ACCESS_KEY"] not in repr(store)
