"""A study as the report sees it: plain data, read once (see ``source``), computed on offline."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OBSERVED = ("SUCCEEDED", "STOPPED_EARLY")


@dataclass(frozen=True)
class Measurement:
    step: str
    epoch: int
    attempt: int
    metrics: dict[str, float]
    time: float  # seconds since the epoch, when the optimizer received it


@dataclass(frozen=True)
class Trial:
    id: str
    phase: int
    number: int
    state: str                   # PENDING, RUNNING, SUCCEEDED, STOPPED_EARLY, FAILED, INFEASIBLE
    parameters: dict[str, Any]   # the phase's fixed parameters plus the trial's own proposal
    task: dict[str, Any]
    attempt: int
    value: float | None          # the objective value, for observations
    stop_reason: str
    error: str
    metrics: dict[str, float]
    artifacts: dict[str, str]
    worker_id: str
    created: float
    started: float               # 0 until first leased
    ended: float                 # 0 until finished
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def observed(self) -> bool:
        return self.state in OBSERVED and self.value is not None

    def final_measurements(self) -> list[Measurement]:
        """The epochs of the attempt that counts (the last one)."""
        return [m for m in self.measurements if m.attempt == self.attempt]

    def step_limits(self) -> dict[str, int]:
        """Step name -> its maximum epochs, from the task."""
        return {s["name"]: int(s.get("max_epochs", 0)) for s in self.task.get("steps", [])}


@dataclass(frozen=True)
class Phase:
    index: int
    name: str
    budget: int
    trials_created: int
    trials_finished: int
    done: bool
    best_trial_id: str
    space: list[dict[str, Any]]  # spec mappings of the parameters it searches; empty until it starts


@dataclass(frozen=True)
class Study:
    id: str
    name: str
    state: str                   # ACTIVE, COMPLETED, STOPPED, FAILED
    message: str
    spec: dict[str, Any]         # the validated spec, defaults filled in
    phases: list[Phase]
    current_phase: int
    trial_counts: dict[str, int]  # by state name
    created: float
    updated: float
    trials: list[Trial]
    best_trial_id: str           # "" while nothing is observed
    read_at: float               # when this snapshot was read

    @property
    def strategy(self) -> str:
        return str(self.spec.get("strategy", ""))

    @property
    def objective_metric(self) -> str:
        return str(self.spec.get("objective", {}).get("metric", "val_accuracy"))

    @property
    def maximize(self) -> bool:
        return self.spec.get("objective", {}).get("goal", "maximize") == "maximize"

    @property
    def dataset_uri(self) -> str:
        return str((self.spec.get("dataset") or {}).get("uri", ""))

    def trial(self, trial_id: str) -> Trial | None:
        return next((t for t in self.trials if t.id == trial_id), None)

    def phase_trials(self, index: int) -> list[Trial]:
        return sorted((t for t in self.trials if t.phase == index), key=lambda t: t.number)
