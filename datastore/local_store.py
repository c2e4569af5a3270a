"""The embedded backend: objects are files under a local directory."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from datastore.keys import TEMP_MARKER, validate_key, validate_prefix
from datastore.store import ObjectNotFound, ObjectStore, StoreError


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Writes ``path`` through a temporary file in the same directory and ``os.replace``.

    ``os.replace`` within one directory is atomic on POSIX, so a concurrent reader (another
    worker on the node) sees the old file or the new one, never a partial one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_MARKER, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStore(ObjectStore):
    """Objects stored as files below ``root``; ``uri`` is the absolute path of ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"local store root {str(self.root)!r} exists and is not a directory")
        self.uri = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({self.uri!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _existing_file(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object {key!r} in {self.uri}")
        return path

    def _writable_path(self, key: str) -> Path:
        path = self._path(key)
        # A key cannot be both an object and a "folder" on disk, unlike S3; say so plainly.
        for parent in path.relative_to(self.root).parents:
            if parent != Path(".") and (self.root / parent).is_file():
                raise StoreError(f"cannot store {key!r} in {self.uri}: {parent.as_posix()!r} "
                                 "is an object, not a prefix")
        if path.is_dir():
            raise StoreError(f"cannot store {key!r} in {self.uri}: it is a prefix of other keys")
        return path

    def put_bytes(self, key: str, data: bytes) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"put_bytes needs bytes, got {type(data).__name__}")
        atomic_write(self._writable_path(key), lambda handle: handle.write(data))
        return self.uri_for(key)

    def put_file(self, key: str, path: str | Path) -> str:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"cannot upload {str(source)!r}: not a file")
        target = self._writable_path(key)
        with source.open("rb") as src:
            atomic_write(target, lambda handle: shutil.copyfileobj(src, handle, 1 << 20))
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        return self._existing_file(key).read_bytes()

    def get_file(self, key: str, path: str | Path) -> None:
        source = self._existing_file(key)
        with source.open("rb") as src:
            atomic_write(Path(path), lambda handle: shutil.copyfileobj(src, handle, 1 << 20))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        prefix = validate_prefix(prefix)
        # Walk only the deepest directory the prefix names; filter the rest by string prefix,
        # which is what S3 does ("ima" matches "images/...").
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*directory.split("/")) if directory else self.root
        if not start.is_dir():
            return iter(())
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(TEMP_MARKER)]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(TEMP_MARKER):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            return  # a prefix, not an object: nothing to delete
        path.unlink(missing_ok=True)
        # Prune emptied folders so list() and the disk stay tidy; stop at the root.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
