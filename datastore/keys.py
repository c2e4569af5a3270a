"""Validation of object keys and list prefixes, shared by every backend.

Both backends apply the same rules so that a key that works on a laptop (local directory) also
works on the cluster (MinIO), and no key can reach outside the store's root.
"""
from __future__ import annotations

from datastore.store import InvalidKey

# S3 limits object names to 1024 bytes of UTF-8; the store's own prefix counts too, so stay below.
MAX_KEY_BYTES = 900
# Names the local backend uses for in-flight writes; a key may not collide with them.
TEMP_MARKER = ".saga-tmp-"


def _check_text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidKey(f"{what} must be a string, got {type(value).__name__}")
    if len(value.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"{what} {value[:40]!r}... is longer than {MAX_KEY_BYTES} bytes")
    if "\\" in value:
        raise InvalidKey(f"{what} {value!r} contains a backslash; use '/' to separate segments")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidKey(f"{what} {value!r} contains a control character")
    if value.startswith("/"):
        raise InvalidKey(f"{what} {value!r} is absolute; keys are relative to the store's root")
    return value


def _check_segments(what: str, value: str, segments: list[str]) -> None:
    for segment in segments:
        if segment == "":
            raise InvalidKey(f"{what} {value!r} has an empty segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise InvalidKey(f"{what} {value!r} contains a {segment!r} segment")
        if segment.startswith(TEMP_MARKER):
            raise InvalidKey(f"{what} {value!r} uses the reserved name prefix {TEMP_MARKER!r}")


def validate_key(key: object) -> str:
    """Returns ``key`` unchanged if it is a valid object key, else raises :class:`InvalidKey`.

    A valid key is a non-empty, relative, ``/``-separated path without empty, ``.`` or ``..``
    segments, backslashes or control characters.
    """
    key = _check_text("key", key)
    if key == "":
        raise InvalidKey("key is empty")
    _check_segments("key", key, key.split("/"))
    return key


def validate_prefix(prefix: object) -> str:
    """Returns ``prefix`` if it is a valid list prefix (``""``, ``"images/"``, ``"ima"``...).

    A prefix follows the key rules except that it may be empty and may end with ``/``.
    """
    prefix = _check_text("prefix", prefix)
    if prefix == "":
        return prefix
    body = prefix[:-1] if prefix.endswith("/") else prefix
    _check_segments("prefix", prefix, body.split("/"))
    return prefix


def join_key(*parts: str) -> str:
    """Joins key parts with ``/`` (ignoring empty parts) and validates the result."""
    return validate_key("/".join(part.strip("/") for part in parts if part.strip("/")))
