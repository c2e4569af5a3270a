"""Trials as plain Python values: what ``Study.best_trial`` and ``Study.trials`` return."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optimizer_svc.client import parameters
from saga.v1 import optimizer_pb2 as pb


@dataclass(frozen=True)
class TrialResult:
    """One trial as the optimizer stores it."""

    id: str
    number: int                    # 0-based within the study
    phase: int
    state: str                     # PENDING, RUNNING, SUCCEEDED, STOPPED_EARLY, FAILED, INFEASIBLE
    params: dict[str, Any]
    value: float | None            # the objective value, for observations
    metrics: dict[str, float] = field(default_factory=dict)      # final metrics sent with the completion
    artifacts: dict[str, str] = field(default_factory=dict)      # name -> object URI
    stop_reason: str = ""          # the stopping rule that ended it
    error: str = ""                # why it failed
    worker_id: str = ""

    @classmethod
    def from_proto(cls, t: pb.Trial) -> "TrialResult":
        return cls(id=t.id, number=t.number, phase=t.phase, state=pb.TrialState.Name(t.state).removeprefix("TRIAL_"),
                   params=parameters(t), value=t.value if t.has_value else None, metrics=dict(t.metrics),
                   artifacts=dict(t.artifacts), stop_reason=t.stop_reason, error=t.error, worker_id=t.worker_id)


def dataframe(rows: list[dict[str, Any]]):
    """The report's trial rows (``report.tables.trials_table``) as a pandas DataFrame, one column per
    parameter (``params_NAME``, as Optuna names them), indexed by the trial number."""
    import pandas as pd

    names = sorted({k for r in rows for k in r["parameters"]})
    flat = []
    for r in rows:
        flat.append({"number": r["trial"], "id": r["id"], "phase": r["phase"], "state": r["state"],
                     "value": r["value"], **{f"params_{n}": r["parameters"].get(n) for n in names},
                     "epochs": r["epochs"], "duration_s": r["duration_s"], "ended_by": r["stopped"],
                     "detail": r["detail"], "worker": r["worker"], "attempt": r["attempt"]})
    columns = ["number", "id", "phase", "state", "value", *[f"params_{n}" for n in names], "epochs", "duration_s",
               "ended_by", "detail", "worker", "attempt"]
    return pd.DataFrame(flat, columns=columns).set_index("number")
