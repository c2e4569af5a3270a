"""Read-only views the core returns; the servicer converts them to protos."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .db import MeasurementRow

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
