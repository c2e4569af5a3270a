"""``open_store``: the one way to get an :class:`ObjectStore` from a URI."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from datastore.local_store import LocalStore
from datastore.retry import RetryPolicy
from datastore.s3_settings import S3Settings
from datastore.store import ObjectStore, StoreError

# S3 bucket naming rules (MinIO enforces the same): 3-63 chars, lowercase, digits, '.', '-'.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class InvalidStoreUri(StoreError, ValueError):
    """The URI names no usable store."""


def open_store(uri: str, *, env: Mapping[str, str] | None = None,
               retry: RetryPolicy | None = None) -> ObjectStore:
    """Opens the store at ``uri``.

    ``s3://bucket[/prefix]`` -> MinIO/S3, configured from ``env`` (default ``os.environ``; see
    :mod:`datastore.s3_settings`); ``file:///abs/path`` or a plain path -> a local directory
    (created on first write). Raises :class:`InvalidStoreUri` for anything else.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidStoreUri("store URI is empty; use s3://bucket/prefix or a directory path")
    uri = uri.strip()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "s3":
        parts = urlsplit(uri)
        bucket = parts.netloc
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise InvalidStoreUri(f"store URI {uri!r}: bucket {bucket!r} is not a valid S3 bucket "
                                  "name (3-63 lowercase letters, digits, '.', '-')")
        if parts.query or parts.fragment:
            raise InvalidStoreUri(f"store URI {uri!r} must not have a query or fragment")
        settings = S3Settings.from_env(os.environ if env is None else env)
        from datastore.s3_store import S3Store  # imports minio only when S3 is used
        try:
            return S3Store(bucket, unquote(parts.path), settings, retry=retry)
        except ValueError as exc:
            raise InvalidStoreUri(f"store URI {uri!r}: {exc}") from exc
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise InvalidStoreUri(f"store URI {uri!r}: file URIs must be local (file:///path)")
        return LocalStore(unquote(parts.path))
    if scheme:
        raise InvalidStoreUri(f"store URI {uri!r}: unsupported scheme {scheme!r} "
                              "(use s3:// or a local path)")
    return LocalStore(uri)
