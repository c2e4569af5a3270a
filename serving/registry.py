"""The models being served: watches the model base, loads new complete versions, swaps them in.

Thread-safe. Requests take a reference to a :class:`LoadedVersion` under the lock and run outside
it, so a version unloaded meanwhile finishes the requests already holding it: a swap never fails
a request. Loading (download, ``tf.saved_model.load``, warm-up) happens outside the lock too.
"""
from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from serving.errors import NotFound
from serving.layout import ModelBase, check_model_name
from serving.loaded_model import LoadedVersion, load_version, warm_up
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionStatus:
    """TF Serving's view of a version: state AVAILABLE or END, with an error for failed loads."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


class ModelRegistry:
    """Serves the newest ``max_versions`` complete versions of each named model of ``base``;
    with ``discover``, also of every model that appears in ``base`` later (``saga up``)."""

    def __init__(self, base: ModelBase, names: Sequence[str], *, max_versions: int = 2,
                 poll_interval_s: float = 1.0, cache_dir: str | Path | None = None,
                 metrics: ServingMetrics | None = None, discover: bool = False) -> None:
        if not names and not discover:
            raise ValueError("at least one model name is needed (or serve every model of the base)")
        if max_versions < 1:
            raise ValueError(f"max_versions must be >= 1, got {max_versions}")
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        self.base = base
        self.names = tuple(check_model_name(n) for n in names)
        self.discover = discover
        self.max_versions = max_versions
        self.poll_interval_s = poll_interval_s
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="saga-serve-"))
        self.metrics = metrics or ServingMetrics()
        self._lock = threading.Lock()
        self._loaded: dict[str, dict[int, LoadedVersion]] = {n: {} for n in self.names}
        self._failed: dict[str, dict[int, str]] = {n: {} for n in self.names}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []

    # -- lookups used by every request ------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> LoadedVersion:
        """The requested version, or the newest loaded one; NotFound when there is none."""
        with self._lock:
            versions = self._loaded.get(name)
            if versions is None:
                raise NotFound(f"model {name!r} is not served (served: {list(self.names)})")
            if version is None:
                if not versions:
                    raise NotFound(f"model {name!r} has no loaded version yet")
                return versions[max(versions)]
            if version not in versions:
                raise NotFound(f"version {version} of model {name!r} is not loaded "
                               f"(loaded: {sorted(versions)})")
            return versions[version]

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """The state of every known version of ``name`` (or of one); NotFound when unknown."""
        with self._lock:
            if name not in self._loaded:
                raise NotFound(f"model {name!r} is not served (served: {list(self.names)})")
            found = [VersionStatus(v, "AVAILABLE") for v in self._loaded[name]]
            found += [VersionStatus(v, "END", "UNKNOWN", msg) for v, msg in self._failed[name].items()]
        if version is not None:
            found = [s for s in found if s.version == version]
            if not found:
                raise NotFound(f"version {version} of model {name!r} is not loaded")
        if not found:  # as TF Serving answers before the first version is there
            raise NotFound(f"Could not find any versions of model {name}")
        return sorted(found, key=lambda s: -s.version)

    def ready(self) -> bool:
        """Whether every named model has a version to serve."""
        with self._lock:
            return all(self._loaded[n] for n in self.names)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Calls ``listener`` after every poll (e.g. to update health)."""
        self._listeners.append(listener)

    # -- watching the base ------------------------------------------------------------------
    def refresh(self) -> None:
        """One poll: loads new complete versions among the newest ``max_versions``, unloads the rest."""
        if self.discover:
            self._discover()
        for name in self.names:
            try:
                available = self.base.versions(name)
            except Exception:  # noqa: BLE001 - a store hiccup must not stop the watcher
                log.exception("cannot list versions of %s in %s", name, self.base.uri)
                continue
            wanted = available[-self.max_versions:]
            for version in wanted:
                with self._lock:
                    known = version in self._loaded[name] or version in self._failed[name]
                if not known:
                    self._load(name, version)
            with self._lock:
                # Unload the others only once a wanted one serves: never leave a model empty.
                if any(v in self._loaded[name] for v in wanted):
                    for version in [v for v in self._loaded[name] if v not in wanted]:
                        del self._loaded[name][version]
                        log.info("unloaded %s version %d", name, version)
                loaded = sorted(self._loaded[name])
            self.metrics.set_loaded(name, loaded)
        for listener in self._listeners:
            listener()

    def _discover(self) -> None:
        try:
            found = [n for n in self.base.model_names() if n not in self.names]
        except Exception:  # noqa: BLE001 - a store hiccup must not stop the watcher
            log.exception("cannot list the models in %s", self.base.uri)
            return
        if found:
            with self._lock:
                for name in found:
                    self._loaded[name], self._failed[name] = {}, {}
                self.names = (*self.names, *found)
            log.info("found model(s) %s in %s", ", ".join(found), self.base.uri)

    def _load(self, name: str, version: int) -> None:
        log.info("loading %s version %d from %s", name, version, self.base.version_uri(name, version))
        try:
            path = self.base.local_path(name, version, self.cache_dir)
            model = load_version(name, version, path)
            warm_up(model)
        except Exception as exc:  # noqa: BLE001 - a broken export must not take the server down
            log.error("version %d of %s failed to load: %s", version, name, exc)
            self.metrics.load_failures.labels(name).inc()
            with self._lock:
                self._failed[name][version] = f"{type(exc).__name__}: {exc}"[:500]
            return
        with self._lock:
            self._loaded[name][version] = model
        log.info("serving %s version %d", name, version)

    def start(self) -> None:
        """Loads what is there now, then keeps polling in a daemon thread."""
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="saga-model-watcher", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.refresh()

    def stop(self) -> None:
        """Stops the watcher (loaded versions keep serving)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
