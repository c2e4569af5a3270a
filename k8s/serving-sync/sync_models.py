"""TF Serving sidecar: copies complete model versions from MinIO/S3 into TF Serving's model base path.

Source layout (what ``saga export`` writes): ``s3://BUCKET/PREFIX/<model name>/<version>/`` holding a
SavedModel. Destination: ``DEST/<model name>/<version>/``, the directory TF Serving polls.

Why not ``mc mirror --watch``: it writes files in place as they arrive, so TF Serving's poller can
find a version directory with ``saved_model.pb`` but half of ``variables/`` and fail to load it.
Here a version is copied only when it is complete -- its required files are present and its listing
(keys, sizes, ETags) did not change between two polls -- into ``DEST/.staging/`` on the same volume,
checked, then moved into place with one atomic ``rename``. TF Serving sees all of it or nothing.

Configuration: flags below; S3 endpoint and credentials from the environment (``SAGA_S3_ENDPOINT``,
``SAGA_S3_ACCESS_KEY``, ``SAGA_S3_SECRET_KEY``, ``SAGA_S3_SECURE``); credentials are never logged.
Metrics (Prometheus) on ``--metrics-port``. SIGTERM stops it between polls.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import HTTPError
from prometheus_client import Counter, Gauge, start_http_server

log = logging.getLogger("saga.serving_sync")

# A SavedModel cannot load without these; an exporter that uploads them in any order is fine
# because the stability check below also waits for the listing to settle.
REQUIRED_FILES = ("saved_model.pb", "variables/variables.index")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

SYNCED = Counter("saga_sync_versions_total", "Model versions copied into the serving volume")
ERRORS = Counter("saga_sync_errors_total", "Polls that failed (object store or disk errors)")
LAST_SUCCESS = Gauge("saga_sync_last_success_timestamp_seconds", "Unix time of the last good poll")
LATEST = Gauge("saga_sync_latest_version", "Newest version present in the serving volume")

# key relative to the version directory -> (size, etag)
Listing = dict[str, tuple[int, str]]


class ConfigError(ValueError):
    """A flag or environment variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str
    secret_key: str
    secure: bool = False

    def __repr__(self) -> str:  # keeps the keys out of any log line that prints the settings
        return f"S3Settings(endpoint={self.endpoint!r}, secure={self.secure})"


def s3_settings_from_env(env: dict[str, str]) -> S3Settings:
    """Reads the SAGA_S3_* variables; accepts ``host:port`` or ``http(s)://host:port``."""
    endpoint = env.get("SAGA_S3_ENDPOINT", "").strip()
    if not endpoint:
        raise ConfigError("SAGA_S3_ENDPOINT is not set (e.g. minio:9000)")
    secure_text = env.get("SAGA_S3_SECURE", "").strip().lower()
    if secure_text not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"SAGA_S3_SECURE must be true or false, not {secure_text!r}")
    secure = secure_text in ("1", "true", "yes")
    if "://" in endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/"):
            raise ConfigError(f"SAGA_S3_ENDPOINT must be host:port or http(s)://host:port, not {endpoint!r}")
        secure = secure or parsed.scheme == "https"
        endpoint = parsed.netloc
    for name in ("SAGA_S3_ACCESS_KEY", "SAGA_S3_SECRET_KEY"):
        if not env.get(name):
            raise ConfigError(f"{name} is not set")
    return S3Settings(endpoint, env["SAGA_S3_ACCESS_KEY"], env["SAGA_S3_SECRET_KEY"], secure)


def parse_source(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"--source must be s3://bucket[/prefix], not {uri!r}")
    return parsed.netloc, parsed.path.strip("/")


def is_complete(listing: Listing) -> bool:
    """Whether every file TF Serving needs to load the version is present and non-empty."""
    return all(listing.get(name, (0, ""))[0] > 0 for name in REQUIRED_FILES)


class ModelSync:
    """Mirrors complete versions of one model; one instance per process, driven by :meth:`poll`."""

    def __init__(self, client: Minio, bucket: str, prefix: str, model_name: str, dest: Path,
                 keep: int) -> None:
        if not _MODEL_NAME.match(model_name):
            raise ConfigError(f"--model-name {model_name!r} must be letters, digits, '.', '_' or '-'")
        if keep < 1:
            raise ConfigError(f"--keep must be at least 1, not {keep}")
        self._client, self._bucket, self._keep = client, bucket, keep
        self._remote_prefix = f"{prefix}/{model_name}/" if prefix else f"{model_name}/"
        self._model_dir = dest / model_name
        self._staging = dest / ".staging"  # same volume, outside the directory TF Serving polls
        self._last_seen: dict[int, Listing] = {}

    def remote_versions(self) -> dict[int, Listing]:
        """Every numeric version under the model's prefix with its file listing."""
        versions: dict[int, Listing] = {}
        for obj in self._client.list_objects(self._bucket, prefix=self._remote_prefix, recursive=True):
            version, _, rel = obj.object_name[len(self._remote_prefix):].partition("/")
            if version.isdigit() and rel and not obj.is_dir:
                versions.setdefault(int(version), {})[rel] = (obj.size or 0, obj.etag or "")
        return versions

    def local_versions(self) -> list[int]:
        if not self._model_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self._model_dir.iterdir() if p.name.isdigit())

    def poll(self) -> list[int]:
        """One pass: copies the versions that are complete and stable; returns them."""
        self._model_dir.mkdir(parents=True, exist_ok=True)
        remote = self.remote_versions()
        present = set(self.local_versions())
        copied = []
        for version in sorted(remote):
            listing = remote[version]
            if version in present or not is_complete(listing):
                continue
            if self._last_seen.get(version) != listing:
                log.info("version %d looks complete; copying it once its listing is stable", version)
                continue
            self._copy(version, listing)
            copied.append(version)
        self._last_seen = remote
        self._prune()
        local = self.local_versions()
        if local:
            LATEST.set(local[-1])
        return copied

    def _copy(self, version: int, listing: Listing) -> None:
        target = self._model_dir / str(version)
        staging = self._staging / f"{target.parent.name}-{version}"
        shutil.rmtree(staging, ignore_errors=True)  # left over from a crash mid-copy
        staging.mkdir(parents=True)
        try:
            for rel, (size, _) in sorted(listing.items()):
                path = staging / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                self._client.fget_object(self._bucket, f"{self._remote_prefix}{version}/{rel}", str(path))
                if path.stat().st_size != size:
                    raise OSError(f"{rel} of version {version}: got {path.stat().st_size} bytes, "
                                  f"expected {size}")
            os.rename(staging, target)  # atomic on one filesystem: TF Serving sees all or nothing
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        SYNCED.inc()
        log.info("version %d of %s is now in %s", version, self._model_dir.name, target)

    def _prune(self) -> None:
        # TF Serving serves the newest version by default; older ones only fill the volume.
        for version in self.local_versions()[:-self._keep]:
            shutil.rmtree(self._model_dir / str(version), ignore_errors=True)
            log.info("removed old version %d", version)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="model base URI, s3://bucket/prefix")
    parser.add_argument("--model-name", required=True, help="model to sync (TF Serving --model_name)")
    parser.add_argument("--dest", type=Path, required=True, help="TF Serving's model volume")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    parser.add_argument("--keep", type=int, default=2, help="newest versions kept on the volume")
    parser.add_argument("--metrics-port", type=int, default=9102, help="Prometheus port (0: off)")
    parser.add_argument("--once", action="store_true", help="poll twice (to see stability) and exit")
    return parser


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.interval <= 0:
            raise ConfigError(f"--interval must be positive, not {args.interval}")
        settings = s3_settings_from_env(dict(os.environ) if env is None else env)
        bucket, prefix = parse_source(args.source)
        client = Minio(settings.endpoint, access_key=settings.access_key,
                       secret_key=settings.secret_key, secure=settings.secure)
        sync = ModelSync(client, bucket, prefix, args.model_name, args.dest, args.keep)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.metrics_port:
        start_http_server(args.metrics_port)
    log.info("syncing %s/%s from %s (%r) into %s", args.source, args.model_name, bucket, settings,
             args.dest)
    polls = 0
    while not stop.is_set():
        try:
            sync.poll()
            LAST_SUCCESS.set(time.time())
        except (S3Error, HTTPError, OSError, ValueError) as exc:  # a poll failing must not end the sidecar
            ERRORS.inc()
            log.warning("poll failed, retrying in %.0fs: %s", args.interval, exc)
        polls += 1
        if args.once and polls >= 2:
            break
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
