"""Prometheus metrics of the server, in a registry of its own (several servers can share a process)."""
from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Frame classification is interactive: resolve 1 ms .. 2.5 s around a 40 ms (25 fps) budget.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    """Request latency by API, model and version; errors by API and code; loaded versions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("saga_serving_request_seconds", "Request latency in seconds",
                                 ["api", "model", "version"], buckets=_BUCKETS, registry=self.registry)
        self.errors = Counter("saga_serving_errors_total", "Failed requests", ["api", "code"],
                              registry=self.registry)
        self.loaded = Gauge("saga_serving_loaded_versions", "Loaded model versions", ["model"],
                            registry=self.registry)
        self.version_loaded = Gauge("saga_serving_version_loaded", "1 while a version is loaded",
                                    ["model", "version"], registry=self.registry)
        self.load_failures = Counter("saga_serving_load_failures_total", "Versions that failed to load",
                                     ["model"], registry=self.registry)
        self.batch_size = Histogram("saga_serving_batch_size", "Examples per model call",
                                    ["model"], buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self._lock = threading.Lock()
        self._shown: dict[str, set[int]] = {}

    def set_loaded(self, model: str, versions: list[int]) -> None:
        """Records the versions of ``model`` now loaded."""
        with self._lock:
            for gone in self._shown.get(model, set()) - set(versions):
                self.version_loaded.remove(model, str(gone))
            for version in versions:
                self.version_loaded.labels(model, str(version)).set(1)
            self._shown[model] = set(versions)
            self.loaded.labels(model).set(len(versions))

    def serve(self, port: int, host: str = "0.0.0.0"):  # noqa: ANN201 - prometheus' own types
        """Starts the /metrics HTTP endpoint; returns (server, thread) for shutdown."""
        return start_http_server(port, addr=host, registry=self.registry)
