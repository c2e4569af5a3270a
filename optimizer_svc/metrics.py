"""Prometheus metrics of the optimizer, in a registry of their own (one per service instance)."""
from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

TRIAL_STATES = ("PENDING", "RUNNING", "SUCCEEDED", "STOPPED_EARLY", "FAILED", "INFEASIBLE")


class _TrialCounts:
    """Trials by state, read from the database at scrape time (right after a restart too)."""

    def __init__(self, counts: Callable[[], dict[str, int]]):
        self._counts = counts

    def collect(self):
        family = GaugeMetricFamily("saga_trials", "Trials by state", labels=["state"])
        counts = self._counts()
        for state in TRIAL_STATES:
            family.add_metric([state], counts.get(state, 0))
        yield family


class _Demand:
    """What studies could run now (optimizer_svc.demand), read at scrape time."""

    def __init__(self, demand: Callable[[], dict[str, Any]]):
        self._demand = demand

    def collect(self):
        demand = self._demand()
        runnable = GaugeMetricFamily("saga_trials_runnable", "Trials a free trainer could start now, by study: "
                                     "capacity left under budget.parallel_trials and the phase budget",
                                     labels=["study"])
        for study, d in sorted(demand.items()):
            runnable.add_metric([study], d.runnable)
        yield runnable
        yield GaugeMetricFamily("saga_trainers_wanted", "Trainers that could be busy now: running plus runnable "
                                "trials of every active study (the target of an autoscaler)",
                                value=sum(d.running + d.runnable for d in demand.values()))


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.proposal_seconds = Histogram("saga_proposal_seconds", "Time to propose a new trial",
                                          buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)
        self.gp_fit_seconds = Histogram("saga_gp_fit_seconds", "Time to fit the Gaussian process",
                                        buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)
        self.lease_expiries = Counter("saga_lease_expiries", "Leases that expired without a report", registry=r)
        self.rpcs = Counter("saga_rpcs", "RPCs by method and status code", ["method", "code"], registry=r)
        self.rpc_seconds = Histogram("saga_rpc_seconds", "Time the optimizer took to answer, by method (LeaseTrial "
                                     "includes its wait for a trial)", ["method"], registry=r,
                                     buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.proposal_fallbacks = Counter("saga_proposal_fallbacks", "Proposals that fell back to a random point "
                                          "because the model failed (see the optimizer log)", registry=r)
        self.lease_recoveries = Counter("saga_lease_recoveries", "Expired leases given back to their worker, "
                                        "whose late report came before any other attempt started", registry=r)
        self.grants_released = Counter("saga_lease_grants_released", "Trials granted after their LeaseTrial "
                                       "caller gave up, put back in the queue", registry=r)
        self._bound = False
        self._demand_bound = False

    def bind_trial_counts(self, counts: Callable[[], dict[str, int]]) -> None:
        if not self._bound:
            self.registry.register(_TrialCounts(counts))
            self._bound = True

    def bind_demand(self, demand: Callable[[], dict[str, Any]]) -> None:
        if not self._demand_bound:
            self.registry.register(_Demand(demand))
            self._demand_bound = True
