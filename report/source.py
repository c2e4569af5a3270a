"""Reads a study for the report: the optimizer over gRPC, the trainer's ``metrics.json`` from the store.

The only module of the report that talks to services; it turns protos and objects into ``model``.
"""
from __future__ import annotations

import json
import posixpath
import time
from typing import Any

from datastore import open_store
from datastore.store import StoreError
from optimizer_svc.client import OptimizerClient, parameters
from saga.v1 import optimizer_pb2 as pb

from .model import Measurement, Phase, Study, Trial

METRICS_ARTIFACT = "metrics"  # trainer_svc.artifacts.METRICS: the trainer's full evaluation


def read_study(client: OptimizerClient, study_id: str, *, all_trials: bool = True) -> Study:
    """One consistent-enough snapshot: the study first, then its trials with every measurement
    (``all_trials=False``: only its best trial, without measurements, for a list of studies)."""
    read_at = time.time()
    s = client.get_study(study_id)
    trials = [_trial(t) for t in client.list_trials(study_id, with_measurements=True)] if all_trials else []
    best = client.best_trial(study_id)
    if not all_trials and best is not None:
        trials = [_trial(best)]
    return Study(
        id=s.id, name=s.name, state=pb.StudyState.Name(s.state).removeprefix("STUDY_"), message=s.message,
        spec=json.loads(s.spec_json), current_phase=s.current_phase,
        phases=[Phase(p.index, p.name, p.budget, p.trials_created, p.trials_finished, p.done, p.best_trial_id,
                      json.loads(p.space_json) if p.space_json else []) for p in s.phases],
        trial_counts={k.removeprefix("TRIAL_"): v for k, v in s.trial_counts.items()},
        created=_seconds(s.create_time), updated=_seconds(s.update_time), trials=trials,
        best_trial_id=best.id if best is not None else "", read_at=read_at)


def read_for_report(client: OptimizerClient, study_id: str) -> tuple[Study, dict[str, Any] | None, str]:
    """The study, its best trial's evaluation (or None) and, without one, why not."""
    study = read_study(client, study_id)
    best = study.trial(study.best_trial_id)
    if best is None:
        return study, None, "no trial has finished with a result yet"
    return (study, *read_evaluation(best))


def read_evaluation(trial: Trial) -> tuple[dict[str, Any] | None, str]:
    """The trainer's ``metrics.json`` of ``trial`` (confusion matrices, per-class metrics), or
    ``(None, why not)`` when the trial has none or the store cannot give it."""
    uri = trial.artifacts.get(METRICS_ARTIFACT)
    if not uri:
        return None, f"trial {trial.id} has no {METRICS_ARTIFACT!r} artifact"
    parent, key = posixpath.split(uri.rstrip("/"))
    try:
        doc = json.loads(open_store(parent).get_bytes(key))
    except (StoreError, ValueError) as e:
        return None, f"cannot read {uri}: {e}"
    if not isinstance(doc, dict) or not isinstance(doc.get("evaluation"), dict):
        return None, f"{uri} has no 'evaluation' section"
    return doc, ""


def _trial(t: pb.Trial) -> Trial:
    return Trial(
        id=t.id, phase=t.phase, number=t.number, state=pb.TrialState.Name(t.state).removeprefix("TRIAL_"),
        parameters=parameters(t), task=json.loads(t.task_json) if t.task_json else {}, attempt=t.attempt,
        value=t.value if t.has_value else None, stop_reason=t.stop_reason, error=t.error,
        metrics=dict(t.metrics), artifacts=dict(t.artifacts), worker_id=t.worker_id,
        created=_seconds(t.create_time), started=_seconds(t.start_time), ended=_seconds(t.end_time),
        measurements=[Measurement(m.step, m.epoch, m.attempt, dict(m.metrics), _seconds(m.time))
                      for m in t.measurements])


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9
