"""Conversions of the core's views to saga.v1 messages (one place, used by the servicer)."""
from __future__ import annotations

import json
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from saga.v1 import optimizer_pb2 as pb

from .views import StudyView, TrialView


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    if seconds:
        ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def study_pb(s: StudyView) -> pb.Study:
    return pb.Study(
        id=s.id, name=s.name, state=pb.StudyState.Value(f"STUDY_{s.state}"), spec_json=s.spec_json,
        phases=[pb.Phase(index=p.index, name=p.name, budget=p.budget, trials_created=p.trials_created,
                         trials_finished=p.trials_finished, done=p.done, best_trial_id=p.best_trial_id,
                         space_json=json.dumps(p.space) if p.space else "")
                for p in s.phases],
        current_phase=s.current_phase, message=s.message, create_time=timestamp(s.created), update_time=timestamp(s.updated),
        trial_counts={f"TRIAL_{k}": v for k, v in s.trial_counts.items()})


def value_pb(v: Any) -> pb.ParameterValue:
    if isinstance(v, str):
        return pb.ParameterValue(categorical_value=v)
    if isinstance(v, int) and not isinstance(v, bool):
        return pb.ParameterValue(int_value=v)
    return pb.ParameterValue(float_value=float(v))


def trial_pb(t: TrialView) -> pb.Trial:
    return pb.Trial(
        id=t.id, study_id=t.study_id, phase=t.phase, number=t.number, state=pb.TrialState.Value(f"TRIAL_{t.state}"),
        parameters={k: value_pb(v) for k, v in t.parameters.items()}, task_json=t.task_json, attempt=t.attempt,
        value=t.value or 0.0, has_value=t.value is not None, stop_reason=t.stop_reason, error=t.error,
        metrics=t.metrics, artifacts=t.artifacts, worker_id=t.worker_id,
        measurements=[pb.Measurement(step=m.step, epoch=m.epoch, metrics=m.metrics, attempt=m.attempt,
                                     time=timestamp(m.time)) for m in t.measurements],
        create_time=timestamp(t.created), start_time=timestamp(t.started), end_time=timestamp(t.ended))
