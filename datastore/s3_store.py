"""The MinIO/S3 backend, through the official ``minio`` client."""
from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from datastore.keys import TEMP_MARKER, validate_key, validate_prefix
from datastore.retry import RetryPolicy, call_with_retry
from datastore.s3_settings import S3Settings
from datastore.store import ObjectNotFound, ObjectStore, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

# S3 error codes that mean "try again later", not "you asked for something wrong".
_TRANSIENT_CODES = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout",
                              "RequestTimeTooSkewed", "OperationAborted", "XMinioServerNotInitialized"})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})
# Connect fast (a dead endpoint should fail quickly and be retried by us); reads may be slow
# for large checkpoints on a busy MinIO.
_TIMEOUT = urllib3.Timeout(connect=5.0, read=120.0)
_PART_SIZE = 16 * 1024 * 1024


def is_transient(exc: BaseException) -> bool:
    """Whether a failed S3 call is worth retrying. A TLS failure is not: it is configuration."""
    if isinstance(exc, urllib3.exceptions.SSLError):
        return False
    if isinstance(exc, S3Error):
        return exc.code in _TRANSIENT_CODES
    if isinstance(exc, ServerError):
        return exc.status_code >= 500 or exc.status_code == 429
    if isinstance(exc, InvalidResponseError):
        return True  # typically a proxy or load balancer answering HTML during a restart
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def _tls_hint(what: str, uri: str, endpoint: str, exc: BaseException) -> str:
    """What to do about a failed TLS handshake; the usual cause is a plain-HTTP endpoint (MinIO's default)."""
    text = str(exc)
    plain = any(s in text for s in ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure",
                                    "http request", "unknown protocol"))
    hint = (f"{endpoint} answers plain HTTP: set SAGA_S3_SECURE=false (or SAGA_S3_ENDPOINT=http://{endpoint})"
            if plain else "check the server's certificate, or set SAGA_S3_SECURE=false for a plain-HTTP endpoint")
    return f"{what} ({uri}) failed: TLS handshake with {endpoint} failed ({text}); {hint}"


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``. Thread-safe; not shareable across processes (create
    one per process, as the minio client requires)."""

    def __init__(self, bucket: str, prefix: str, settings: S3Settings,
                 retry: RetryPolicy | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            validate_key(self.prefix)
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._endpoint = settings.endpoint
        self._retry = retry or RetryPolicy(budget_s=settings.retry_s)
        # Our own pool without urllib3 retries: retrying happens once, here, with one policy.
        http = urllib3.PoolManager(timeout=_TIMEOUT, retries=False, maxsize=16)
        self._client = Minio(settings.endpoint, access_key=settings.access_key,
                             secret_key=settings.secret_key, secure=settings.secure,
                             region=settings.region, http_client=http)
        self._bucket_lock = threading.Lock()
        self._bucket_ready = False

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r}, endpoint={self._endpoint!r})"

    # -- helpers -----------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return call_with_retry(fn, is_transient=is_transient, policy=self._retry,
                                   what=f"{what} ({self.uri})")
        except S3Error as exc:
            if exc.code in _NOT_FOUND_CODES:
                raise ObjectNotFound(f"{what}: not found in {self.uri}") from exc
            raise StoreError(f"{what} ({self.uri}) failed: S3 {exc.code}: {exc.message}") from exc
        except (ServerError, InvalidResponseError) as exc:
            raise StoreError(f"{what} ({self.uri}) failed: {exc}") from exc
        except urllib3.exceptions.SSLError as exc:
            raise StoreError(_tls_hint(what, self.uri, self._endpoint, exc)) from exc

    def _ensure_bucket(self) -> None:
        """Creates the bucket on first write; readers never need the permission to create."""
        with self._bucket_lock:
            if self._bucket_ready:
                return
            if not self._call(f"check bucket {self.bucket!r}",
                              lambda: self._client.bucket_exists(self.bucket)):
                try:
                    self._call(f"create bucket {self.bucket!r}",
                               lambda: self._client.make_bucket(self.bucket))
                    log.info("created bucket %s on %s", self.bucket, self._endpoint)
                except StoreError as exc:
                    # Another worker may have created it between our check and our create.
                    cause = exc.__cause__
                    if not (isinstance(cause, S3Error) and cause.code in
                            ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
                        raise
            self._bucket_ready = True

    # -- contract ----------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"put_bytes needs bytes, got {type(data).__name__}")
        name = self._name(key)
        self._ensure_bucket()
        payload = bytes(data)
        # A fresh stream per attempt: a retry must resend from the start.
        self._call(f"put {key!r}", lambda: self._client.put_object(
            self.bucket, name, io.BytesIO(payload), len(payload)))
        return self.uri_for(key)

    def put_file(self, key: str, path: str | Path) -> str:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"cannot upload {str(source)!r}: not a file")
        name = self._name(key)
        self._ensure_bucket()
        # S3 makes a PUT visible only when complete, so uploads are atomic by nature.
        self._call(f"put {key!r}", lambda: self._client.fput_object(
            self.bucket, name, str(source), part_size=_PART_SIZE))
        return self.uri_for(key)

    def get_bytes(self, key: str) -> bytes:
        name = self._name(key)

        def fetch() -> bytes:
            response = self._client.get_object(self.bucket, name)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call(f"get {key!r}", fetch)

    def get_file(self, key: str, path: str | Path) -> None:
        name = self._name(key)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)

        def fetch() -> None:
            response = self._client.get_object(self.bucket, name)
            fd, tmp = tempfile.mkstemp(prefix=TEMP_MARKER, dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    for chunk in response.stream(1 << 20):
                        handle.write(chunk)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            finally:
                response.close()
                response.release_conn()

        self._call(f"get {key!r}", fetch)

    def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            self._call(f"stat {key!r}", lambda: self._client.stat_object(self.bucket, name))
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        prefix = validate_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0

        def fetch() -> list[str]:
            return [obj.object_name[strip:] for obj in self._client.list_objects(
                self.bucket, prefix=full or None, recursive=True) if not obj.is_dir]

        try:
            keys = self._call(f"list {prefix!r}", fetch)
        except ObjectNotFound:
            keys = []  # no bucket yet: nothing stored
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._call(f"delete {key!r}", lambda: self._client.remove_object(self.bucket, name))
        except ObjectNotFound:
            pass
