"""Read-only views the core returns; the servicer converts them to protos."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .db import Database, MeasurementRow, StudyRow, TrialRow
from .spec import StudySpec
from .space import to_spec
from .strategies import PhaseContext, phase_names, phase_params

TERMINAL = ("SUCCEEDED", "STOPPED_EARLY", "FAILED", "INFEASIBLE")
OBSERVED = ("SUCCEEDED", "STOPPED_EARLY")
ACTIVE, COMPLETED, STOPPED, FAILED = "ACTIVE", "COMPLETED", "STOPPED", "FAILED"


@dataclass(frozen=True)
class PhaseView:
    index: int
    name: str
    budget: int
    trials_created: int
    trials_finished: int
    done: bool
    best_trial_id: str
    space: list[dict[str, Any]]  # the parameters the phase searches (space.to_spec); empty until it starts


@dataclass(frozen=True)
class StudyView:
    id: str
    name: str
    state: str
    spec_json: str
    phases: list[PhaseView]
    current_phase: int
    message: str
    created: float
    updated: float
    trial_counts: dict[str, int]
    project: str = "default"


@dataclass(frozen=True)
class TrialView:
    id: str
    study_id: str
    phase: int
    number: int
    state: str
    parameters: dict[str, Any]
    task_json: str
    attempt: int
    value: float | None
    stop_reason: str
    error: str
    metrics: dict[str, float]
    artifacts: dict[str, str]
    worker_id: str
    created: float
    started: float
    ended: float
    measurements: list[MeasurementRow] = field(default_factory=list)


@dataclass(frozen=True)
class Lease:
    id: str
    deadline: float


def merged_parameters(db: Database, t: TrialRow) -> dict[str, Any]:
    """A trial's full parameters: those fixed by its phase plus its own proposal."""
    phase = db.phases(t.study_id)[t.phase]
    return {**PhaseContext.from_json(phase.context_json).fixed, **t.params}


def study_view(db: Database, spec: StudySpec, s: StudyRow) -> StudyView:
    rows = {p.idx: p for p in db.phases(s.id)}
    phases = []
    for idx, name in enumerate(phase_names(spec)):
        p = rows.get(idx)
        created = db.count(s.id, phase=idx) if p else 0
        finished = db.count(s.id, phase=idx, states=TERMINAL) if p else 0
        space = [to_spec(q) for q in phase_params(spec, name, PhaseContext.from_json(p.context_json))] if p else []
        phases.append(PhaseView(idx, name, p.budget if p else spec.budget.trials_for(name), created, finished,
                                bool(p and p.done), p.best_trial_id if p else "", space))
    return StudyView(s.id, s.name, s.state, s.spec_json, phases, s.current_phase, s.message, s.created,
                     s.updated, db.count_trials(s.id), spec.project)


def trial_view(db: Database, t: TrialRow, with_measurements: bool = False) -> TrialView:
    return TrialView(t.id, t.study_id, t.phase, t.number, t.state, merged_parameters(db, t), t.task_json,
                     t.attempt, t.value, t.stop_reason, t.error, t.metrics, t.artifacts, t.worker_id,
                     t.created, t.started, t.ended, db.measurements(t.id) if with_measurements else [])
