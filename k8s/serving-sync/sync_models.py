"""TF Serving sidecar: copies complete model versions from MinIO/S3 into TF Serving's model base path.

Source layout (what ``saga export`` writes): ``s3://BUCKET/PREFIX/<model name>/<version>/`` holding a
SavedModel. Destination: ``DEST/<model name>/<version>/``, the directory TF Serving polls.

Why not ``mc mirror --watch``: it writes files in place as they arrive, so TF Serving's poller can
find a version directory with ``saved_model.pb`` but half of ``variables/`` and fail to load it.
Here a version is copied only when it is complete -- ``saga export`` uploads the marker
``assets.extra/saga_export.json`` (listing every file of the version) after all other files, see
``serving/layout.py`` -- into ``DEST/.staging/`` on the same volume, checked against the marker, then
moved into place with one atomic ``rename``. TF Serving sees all of it or nothing.

Configuration: flags below; S3 endpoint and credentials from the environment (``SAGA_S3_ENDPOINT``,
``SAGA_S3_ACCESS_KEY``, ``SAGA_S3_SECRET_KEY``, ``SAGA_S3_SECURE``); credentials are never logged.
Metrics (Prometheus) on ``--metrics-port``, which also answers ``/ready``: 200 once TF Serving
(``--serving-url``, its REST API) reports a version of the model AVAILABLE, else 503. It is the
pod's readiness probe, so no probe has to name the model (the sidecar gets it from its flags).
SIGTERM stops it between polls.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse
from wsgiref.simple_server import WSGIRequestHandler, make_server

from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import HTTPError
from prometheus_client import Counter, Gauge, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger("saga.serving_sync")

# The completion marker of serving/layout.py (MARKER): uploaded last, it lists the version's files.
MARKER = "assets.extra/saga_export.json"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

SYNCED = Counter("saga_sync_versions_total", "Model versions copied into the serving volume")
ERRORS = Counter("saga_sync_errors_total", "Polls that failed (object store or disk errors)")
LAST_SUCCESS = Gauge("saga_sync_last_success_timestamp_seconds", "Unix time of the last good poll")
LATEST = Gauge("saga_sync_latest_version", "Newest version present in the serving volume")

# key relative to the version directory -> size in bytes
Listing = dict[str, int]


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
    """Reads the SAGA_S3_* variables as datastore/s3_settings.py does: ``host:port`` or
    ``http(s)://host:port``; TLS from SAGA_S3_SECURE, else from the scheme, else on."""
    endpoint = env.get("SAGA_S3_ENDPOINT", "").strip()
    if not endpoint:
        raise ConfigError("SAGA_S3_ENDPOINT is not set (e.g. minio:9000)")
    secure = True
    if "://" in endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/"):
            raise ConfigError(f"SAGA_S3_ENDPOINT must be host:port or http(s)://host:port, not {endpoint!r}")
        secure, endpoint = parsed.scheme == "https", parsed.netloc
    secure_text = env.get("SAGA_S3_SECURE", "").strip().lower()
    if secure_text in ("1", "true", "yes", "on"):
        secure = True
    elif secure_text in ("0", "false", "no", "off"):
        secure = False
    elif secure_text:
        raise ConfigError(f"SAGA_S3_SECURE must be true or false, not {secure_text!r}")
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


def _is_safe_relative(path: object) -> bool:
    """Whether a path named by the (remote, untrusted) marker stays inside the version directory."""
    return (isinstance(path, str) and bool(path) and not path.startswith("/")
            and all(part not in ("", ".", "..") for part in path.split("/")))


class IncompleteVersion(ValueError):
    """A version's marker is unreadable or names files the store does not hold."""


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

    def remote_versions(self) -> dict[int, Listing]:
        """Every numeric version under the model's prefix with its file listing."""
        versions: dict[int, Listing] = {}
        for obj in self._client.list_objects(self._bucket, prefix=self._remote_prefix, recursive=True):
            version, _, rel = obj.object_name[len(self._remote_prefix):].partition("/")
            if version.isdigit() and rel and not obj.is_dir:
                versions.setdefault(int(version), {})[rel] = obj.size or 0
        return versions

    def local_versions(self) -> list[int]:
        if not self._model_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self._model_dir.iterdir() if p.name.isdigit())

    def poll(self) -> list[int]:
        """One pass: copies the complete versions not yet on the volume; returns them."""
        self._model_dir.mkdir(parents=True, exist_ok=True)
        remote = self.remote_versions()
        present = set(self.local_versions())
        complete = sorted(v for v, listing in remote.items() if MARKER in listing)
        copied = []
        # Only the newest `keep` complete versions: older ones would be pruned right away.
        for version in (v for v in complete[-self._keep:] if v not in present):
            try:
                self._copy(version, remote[version])
            except IncompleteVersion as exc:
                ERRORS.inc()
                log.error("skipping version %d: %s", version, exc)
                continue
            copied.append(version)
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
            marker = staging / MARKER
            marker.parent.mkdir(parents=True)
            self._client.fget_object(self._bucket, f"{self._remote_prefix}{version}/{MARKER}", str(marker))
            try:
                files = json.loads(marker.read_text())["files"]
            except (ValueError, KeyError, TypeError) as exc:
                raise IncompleteVersion(f"unreadable marker {MARKER}: {exc}") from exc
            if not isinstance(files, list) or not all(_is_safe_relative(f) for f in files):
                raise IncompleteVersion(f"marker {MARKER} must list relative paths inside the version")
            missing = sorted(set(files) - set(listing))
            if missing or "saved_model.pb" not in files:
                raise IncompleteVersion(f"marker lists files the store lacks: {missing or ['saved_model.pb']}")
            for rel in sorted(files):
                size = listing[rel]
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


Readiness = Callable[[], tuple[bool, str]]


def serving_readiness(serving_url: str, model_name: str, timeout_s: float = 3.0) -> Readiness:
    """Asks TF Serving's REST API (``GET /v1/models/NAME``) whether a version of the model is AVAILABLE."""
    url = f"{serving_url.rstrip('/')}/v1/models/{quote(model_name)}"

    def ready() -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                states = [v.get("state") for v in json.load(response).get("model_version_status", [])]
        except (OSError, ValueError, AttributeError) as exc:  # not up yet, 404 before a version, bad JSON
            return False, f"{url}: {exc}"
        return "AVAILABLE" in states, f"{model_name}: versions {states or 'none'}"
    return ready


def volume_readiness(sync: ModelSync) -> Readiness:
    """Without a server to ask: ready once a version is on the volume."""
    def ready() -> tuple[bool, str]:
        versions = sync.local_versions()
        return bool(versions), f"versions on the volume: {versions or 'none'}"
    return ready


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: no access log
        pass


def health_app(ready: Readiness) -> Callable:
    """A WSGI app: ``/ready`` answers the readiness check, every other path Prometheus metrics."""
    metrics = make_wsgi_app()

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/ready":
            ok, detail = ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [detail.encode() + b"\n"]
        return metrics(environ, start_response)
    return app


def serve_health(port: int, ready: Readiness) -> ThreadingWSGIServer:
    """Serves :func:`health_app` on ``port`` (0: any free port) from a daemon thread."""
    server = make_server("", port, health_app(ready), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="model base URI, s3://bucket/prefix")
    parser.add_argument("--model-name", required=True, help="model to sync (TF Serving --model_name)")
    parser.add_argument("--dest", type=Path, required=True, help="TF Serving's model volume")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    parser.add_argument("--keep", type=int, default=2, help="newest versions kept on the volume")
    parser.add_argument("--metrics-port", type=int, default=9102, help="Prometheus metrics and /ready (0: off)")
    parser.add_argument("--serving-url", help="TF Serving's REST API, e.g. http://127.0.0.1:8501, asked by /ready "
                                              "(default: ready once a version is on the volume)")
    parser.add_argument("--once", action="store_true", help="poll once and exit")
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
    if not args.once:  # a one-shot run keeps the caller's signal handling
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.metrics_port:
        ready = serving_readiness(args.serving_url, args.model_name) if args.serving_url else volume_readiness(sync)
        serve_health(args.metrics_port, ready)
    log.info("syncing %s/%s from %s (%r) into %s", args.source, args.model_name, bucket, settings,
             args.dest)
    while not stop.is_set():
        try:
            sync.poll()
            LAST_SUCCESS.set(time.time())
        except (S3Error, HTTPError, OSError, ValueError) as exc:  # a poll failing must not end the sidecar
            ERRORS.inc()
            log.warning("poll failed, retrying in %.0fs: %s", args.interval, exc)
            if args.once:
                return 1
        if args.once:
            break
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
