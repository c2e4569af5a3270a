"""Demand for trainers: how many trials each active study could start right now.

Trials are proposed when a worker leases, so a study waiting for workers has no PENDING trial and
``saga_trials{state="PENDING"}`` says nothing about it. This read-only query computes what leasing
would allow instead -- the same two limits :meth:`OptimizerCore._try_lease` applies: at most
``budget.parallel_trials`` trials running, and no more trials in a phase than its budget. An
autoscaler (KEDA, an HPA on an external metric) sizes the trainers by it (k8s/components/keda).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .db import Database, StudyRow
from .spec import StudySpec
from .views import ACTIVE


@dataclass(frozen=True)
class Demand:
    running: int    # trials of the study leased to a worker now
    runnable: int   # trials a free worker could lease now: re-queued ones first, then new proposals


def demand_by_study(db: Database, spec_of: Callable[[StudyRow], StudySpec]) -> dict[str, Demand]:
    """Demand of every active study, by study id; the caller holds the database lock."""
    found: dict[str, Demand] = {}
    for study in db.studies((ACTIVE,)):
        spec = spec_of(study)
        phase = db.phases(study.id)[study.current_phase]
        running = db.count(study.id, states=("RUNNING",))
        pending = db.count(study.id, states=("PENDING",))
        unproposed = max(0, phase.budget - db.count(study.id, phase=phase.idx))
        free = max(0, spec.budget.parallel_trials - running)
        found[study.id] = Demand(running, min(free, pending + unproposed))
    return found
