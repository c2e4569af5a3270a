"""Which store URIs a study may name: ``s3://bucket/prefix`` or a local path, nothing else."""
from __future__ import annotations

from urllib.parse import urlsplit

from .limits import MAX_URI

SCHEMES = ("s3", "file")


def scheme(uri: str) -> str:
    """``"s3"``, ``"file"`` or ``""`` (a plain path)."""
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


def is_s3(uri: str) -> bool:
    return scheme(uri) == "s3"


def check_store_uri(uri: object, what: str) -> str:
    """``uri`` unchanged when it names a place in a store; ValueError saying why not.

    Refused: other schemes (``ftp://``, ``http://``), credentials in the URI (they belong in the
    environment), ``..`` segments, queries and fragments, control characters.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"{what} must be s3://bucket/prefix or a local path, got {uri!r}")
    if len(uri) > MAX_URI:
        raise ValueError(f"{what} is longer than {MAX_URI} characters")
    if uri != uri.strip() or any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise ValueError(f"{what} {uri!r} has surrounding spaces or control characters")
    kind = scheme(uri)
    if "://" in uri and kind not in SCHEMES:
        raise ValueError(f"{what} {uri!r}: unsupported scheme {kind!r}; use s3://bucket/prefix or a local path")
    path = uri
    if kind:
        parts = urlsplit(uri)
        if "@" in parts.netloc:
            raise ValueError(f"{what} must not contain credentials; give them to the services as "
                             "SAGA_S3_ACCESS_KEY and SAGA_S3_SECRET_KEY")
        if parts.query or parts.fragment or "?" in uri or "#" in uri:
            raise ValueError(f"{what} {uri!r} must not have a query or fragment")
        if kind == "s3" and not parts.netloc:
            raise ValueError(f"{what} {uri!r} names no bucket (s3://bucket/prefix)")
        if kind == "file" and parts.netloc not in ("", "localhost"):
            raise ValueError(f"{what} {uri!r}: file URIs must be local (file:///path)")
        path = parts.path
    if ".." in path.replace("\\", "/").split("/"):
        raise ValueError(f"{what} {uri!r} must not contain '..' segments")
    return uri
