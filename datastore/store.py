"""The object-store contract shared by every part of Saga.

URIs: ``s3://bucket/prefix`` (MinIO or any S3 server; endpoint and credentials from the
environment) or a local directory (``file:///abs/path`` or a plain path). Keys are
``/``-separated, relative, and never contain ``..``; a bad key raises :class:`InvalidKey`.

Implementations are thread-safe and retry transient failures (connection errors, 5xx,
``SlowDown``) with backoff; when retries are exhausted they raise :class:`StoreUnavailable`. ``put_*`` is atomic: a reader sees the old object or the new
one, never a partial one. A missing object raises :class:`ObjectNotFound`.
"""
from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path


class StoreError(Exception):
    """Base class of object-store errors."""


class ObjectNotFound(StoreError, KeyError):
    """The key does not exist."""


class InvalidKey(StoreError, ValueError):
    """The key is empty, absolute, or escapes its prefix (``..``)."""


class StoreUnavailable(StoreError):
    """The store could not be reached (or kept failing) after all retries; worth retrying later."""


class IntegrityError(StoreError):
    """An object's content does not match the checksum recorded for it."""


class ObjectStore(abc.ABC):
    """A flat key -> bytes store rooted at ``uri``."""

    uri: str

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> str:
        """Stores ``data`` under ``key``; returns the object's full URI."""

    @abc.abstractmethod
    def put_file(self, key: str, path: str | Path) -> str:
        """Uploads a local file; returns the object's full URI."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's content; ObjectNotFound when missing."""

    @abc.abstractmethod
    def get_file(self, key: str, path: str | Path) -> None:
        """Downloads the object to ``path`` (written atomically); ObjectNotFound when missing."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` (recursive), sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Removes the object; a missing object is not an error."""

    def uri_for(self, key: str) -> str:
        """The full URI of ``key`` under this store."""
        return f"{self.uri.rstrip('/')}/{key}"
