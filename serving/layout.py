"""TF Serving's model layout ``<base>/<name>/<version>/`` on a local directory or an object store.

A version is *complete* when its marker ``assets.extra/saga_export.json`` exists; the marker is
the last thing an export writes, so a reader that only loads complete versions never sees a
half-written one. On a local directory the export also builds the version under a hidden
temporary name and renames it into place, which protects the official TF Serving too (it ignores
non-numeric directories and ``assets.extra``).
"""
from __future__ import annotations

import abc
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from datastore.store import ObjectStore

MARKER = "assets.extra/saga_export.json"
CARD = "assets.extra/model_card.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_TMP_PREFIX = ".saga-tmp-"


class VersionExists(Exception):
    """Another export took this version number first."""


def check_model_name(name: str) -> str:
    """``name`` if it is a usable model name (letters, digits, ``._-``); ValueError otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"model name {name!r} must be 1-128 letters, digits, '.', '_' or '-' "
                         f"and start with a letter or digit")
    return name


def _version_of(part: str) -> int | None:
    return int(part) if part.isdigit() and len(part) < 19 else None


class ModelBase(abc.ABC):
    """Where exported models live: ``<uri>/<name>/<version>/`` (TF Serving's model base path)."""

    uri: str

    @abc.abstractmethod
    def version_numbers(self, name: str) -> dict[int, bool]:
        """Every numeric version of ``name`` -> whether it is complete."""

    @abc.abstractmethod
    def model_names(self) -> list[str]:
        """The names of the models under the base (valid names only), sorted."""

    def versions(self, name: str) -> list[int]:
        """The complete versions of ``name``, ascending."""
        return sorted(v for v, complete in self.version_numbers(name).items() if complete)

    def next_version(self, name: str) -> int:
        """One more than any version present, complete or not (an unfinished one keeps its number)."""
        return max(self.version_numbers(name), default=0) + 1

    @abc.abstractmethod
    def staging_dir(self, name: str) -> Path:
        """A fresh local directory to build a version in, cheap to publish from."""

    @abc.abstractmethod
    def publish(self, name: str, version: int, staged: Path) -> str:
        """Makes the staged directory version ``version`` atomically; returns its URI.

        The staged directory must already hold the marker. Raises :class:`VersionExists`.
        """

    @abc.abstractmethod
    def local_path(self, name: str, version: int, cache_dir: Path) -> Path:
        """A local directory holding the version, downloading it into ``cache_dir`` if needed."""

    @abc.abstractmethod
    def read_text(self, name: str, version: int, relative: str) -> str:
        """A file of a version, e.g. :data:`CARD`; FileNotFoundError when missing."""

    def version_uri(self, name: str, version: int) -> str:
        return f"{self.uri.rstrip('/')}/{name}/{version}"


class LocalModelBase(ModelBase):
    """A model base on the local filesystem; publishing is a directory rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(e.name for e in self.root.iterdir() if e.is_dir() and _NAME.fullmatch(e.name))

    def version_numbers(self, name: str) -> dict[int, bool]:
        found: dict[int, bool] = {}
        folder = self.root / check_model_name(name)
        if folder.is_dir():
            for entry in folder.iterdir():
                version = _version_of(entry.name)
                if version is not None and entry.is_dir():
                    found[version] = (entry / MARKER).is_file()
        return found

    def staging_dir(self, name: str) -> Path:
        # Inside the model folder, so that publishing is a rename on one filesystem.
        folder = self.root / check_model_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=folder))

    def publish(self, name: str, version: int, staged: Path) -> str:
        target = self.root / name / str(version)
        if target.exists():
            raise VersionExists(f"{target} already exists")
        try:
            os.rename(staged, target)
        except OSError as exc:  # a concurrent export created it between the check and the rename
            raise VersionExists(f"{target}: {exc}") from exc
        return str(target)

    def local_path(self, name: str, version: int, cache_dir: Path) -> Path:
        return self.root / name / str(version)

    def read_text(self, name: str, version: int, relative: str) -> str:
        return (self.root / name / str(version) / relative).read_text()


class StoreModelBase(ModelBase):
    """A model base in an object store (MinIO/S3); the marker is uploaded after every other file."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.uri = store.uri

    def model_names(self) -> list[str]:
        return sorted({key.split("/", 1)[0] for key in self.store.list() if "/" in key
                       and _NAME.fullmatch(key.split("/", 1)[0])})

    def version_numbers(self, name: str) -> dict[int, bool]:
        found: dict[int, bool] = {}
        prefix = f"{check_model_name(name)}/"
        for key in self.store.list(prefix):
            parts = key[len(prefix):].split("/", 1)
            version = _version_of(parts[0])
            if version is not None and len(parts) == 2:
                found[version] = found.get(version, False) or parts[1] == MARKER
        return found

    def staging_dir(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=_TMP_PREFIX))

    def publish(self, name: str, version: int, staged: Path) -> str:
        prefix = f"{name}/{version}/"
        if next(iter(self.store.list(prefix)), None) is not None:
            raise VersionExists(f"{self.store.uri_for(prefix)} already has objects")
        files = sorted(p for p in staged.rglob("*") if p.is_file())
        marker = staged / MARKER
        for path in files:
            if path != marker:
                self.store.put_file(prefix + path.relative_to(staged).as_posix(), path)
        self.store.put_file(prefix + MARKER, marker)
        shutil.rmtree(staged, ignore_errors=True)
        return self.version_uri(name, version)

    def local_path(self, name: str, version: int, cache_dir: Path) -> Path:
        target = cache_dir / name / str(version)
        if (target / MARKER).is_file():
            return target
        prefix = f"{name}/{version}/"
        tmp = cache_dir / name / f"{_TMP_PREFIX}{version}-{uuid.uuid4().hex}"
        try:
            for key in self.store.list(prefix):
                self.store.get_file(key, tmp / key[len(prefix):])
            shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def read_text(self, name: str, version: int, relative: str) -> str:
        from datastore.store import ObjectNotFound
        try:
            return self.store.get_bytes(f"{name}/{version}/{relative}").decode()
        except ObjectNotFound as exc:
            raise FileNotFoundError(f"{self.version_uri(name, version)}/{relative}") from exc


def open_model_base(target: str | Path | ObjectStore | ModelBase) -> ModelBase:
    """The model base at a local path, ``file://`` URI, ``s3://`` URI or object store."""
    if isinstance(target, ModelBase):
        return target
    if isinstance(target, ObjectStore):
        local = _local_root(target.uri)
        return LocalModelBase(local) if local is not None else StoreModelBase(target)
    text = str(target)
    local = _local_root(text)
    if local is not None:
        return LocalModelBase(local)
    if text.startswith("s3://"):
        from datastore import open_store  # imported here: only object-store bases need it
        return StoreModelBase(open_store(text))
    raise ValueError(f"model base {text!r} is neither a local path, file:// nor s3:// URI")


def _local_root(uri: str) -> str | None:
    if uri.startswith("file://"):
        return uri[len("file://"):]
    return None if "://" in uri else uri


def write_marker(staged: Path, info: dict) -> None:
    """Writes the completion marker into a staged version (last, after every other file)."""
    files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*")
                   if p.is_file() and p != staged / MARKER)
    (staged / MARKER).parent.mkdir(parents=True, exist_ok=True)
    (staged / MARKER).write_text(json.dumps({**info, "files": files}, indent=1))
