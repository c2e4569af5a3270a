"""Prometheus metrics of the dashboard, in a registry of its own, served on ``--metrics-port``."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("saga_dashboard_requests", "API requests by route and HTTP status",
                                ["route", "code"], registry=r)
        self.seconds = Histogram("saga_dashboard_request_seconds", "Time to answer an API request, by route",
                                 ["route"], buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30), registry=r)
        self.live_streams = Gauge("saga_dashboard_live_streams", "Pages following a study live", registry=r)
