"""gRPC servicer: converts saga.v1 messages to core calls and core errors to status codes."""
from __future__ import annotations

import functools
import json
import logging
import queue
from typing import Any, Callable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from saga.v1 import optimizer_pb2 as pb
from saga.v1 import optimizer_pb2_grpc as pb_grpc

from .core import OptimizerCore
from .errors import FailedPrecondition, InvalidArgument, NotFound, OptimizerError, ResourceExhausted
from .views import ACTIVE, StudyView, TrialView

log = logging.getLogger(__name__)

_CODES = {InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT, NotFound: grpc.StatusCode.NOT_FOUND,
          FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
          ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED}
_OUTCOMES = {pb.OUTCOME_SUCCEEDED: "SUCCEEDED", pb.OUTCOME_FAILED: "FAILED", pb.OUTCOME_INFEASIBLE: "INFEASIBLE",
             pb.OUTCOME_RELEASED: "RELEASED"}
_DECISIONS = {"continue": pb.CONTINUE, "stop_step": pb.STOP_STEP, "stop_trial": pb.STOP_TRIAL}


def _ts(seconds: float) -> Timestamp:
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
        current_phase=s.current_phase, message=s.message, create_time=_ts(s.created), update_time=_ts(s.updated),
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
                                     time=_ts(m.time)) for m in t.measurements],
        create_time=_ts(t.created), start_time=_ts(t.started), end_time=_ts(t.ended))


def _abort(servicer: "OptimizerServicer", name: str, error: Exception, context: grpc.ServicerContext) -> None:
    """Domain errors get their status code; anything else is a bug, logged and reported INTERNAL."""
    if isinstance(error, OptimizerError):
        code, message = _CODES.get(type(error), grpc.StatusCode.INVALID_ARGUMENT), str(error)
    else:
        log.error("%s failed", name, exc_info=error)
        code, message = grpc.StatusCode.INTERNAL, f"{name}: internal error (see the optimizer log)"
    servicer.core.metrics.rpcs.labels(name, code.name).inc()
    context.abort(code, message)


def _translated(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: "OptimizerServicer", request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as e:
            _abort(self, method.__name__, e, context)
    return wrapper


def _translated_stream(method: Callable) -> Callable:
    """``_translated`` for server-streaming methods: errors surface while iterating."""
    @functools.wraps(method)
    def wrapper(self: "OptimizerServicer", request: Any, context: grpc.ServicerContext) -> Any:
        try:
            yield from method(self, request, context)
        except Exception as e:
            _abort(self, method.__name__, e, context)
    return wrapper


class OptimizerServicer(pb_grpc.OptimizerServicer):
    def __init__(self, core: OptimizerCore):
        self.core = core

    def _ok(self, name: str) -> None:
        self.core.metrics.rpcs.labels(name, "OK").inc()

    @_translated
    def CreateStudy(self, request, context):
        study = self.core.create_study(request.spec_json)
        self._ok("CreateStudy")
        return pb.CreateStudyResponse(study=study_pb(study))

    @_translated
    def GetStudy(self, request, context):
        study = self.core.get_study(request.study_id)
        self._ok("GetStudy")
        return pb.GetStudyResponse(study=study_pb(study))

    @_translated
    def ListStudies(self, request, context):
        studies = self.core.list_studies()
        self._ok("ListStudies")
        return pb.ListStudiesResponse(studies=[study_pb(s) for s in studies])

    @_translated
    def StopStudy(self, request, context):
        study = self.core.stop_study(request.study_id, request.reason)
        self._ok("StopStudy")
        return pb.StopStudyResponse(study=study_pb(study))

    @_translated
    def LeaseTrial(self, request, context):
        # Never wait past the client's own deadline.
        remaining = context.time_remaining()
        timeout = request.timeout_seconds
        if remaining is not None and timeout > 0:
            timeout = max(0.0, min(timeout, remaining - 0.5))
        got = self.core.lease_trial(request.worker_id, request.study_id, timeout)
        self._ok("LeaseTrial")
        if got is None:
            return pb.LeaseTrialResponse()
        trial, lease = got
        return pb.LeaseTrialResponse(trial=trial_pb(trial), lease=pb.Lease(id=lease.id, deadline=_ts(lease.deadline)))

    @_translated
    def ReportProgress(self, request, context):
        decision, reason, deadline = self.core.report_progress(
            request.trial_id, request.lease_id, request.step, request.epoch, dict(request.metrics))
        self._ok("ReportProgress")
        return pb.ReportProgressResponse(decision=_DECISIONS[decision], reason=reason, lease_deadline=_ts(deadline))

    @_translated
    def CompleteTrial(self, request, context):
        if request.outcome not in _OUTCOMES:
            raise InvalidArgument("outcome: must be OUTCOME_SUCCEEDED, OUTCOME_FAILED, OUTCOME_INFEASIBLE or "
                                  "OUTCOME_RELEASED")
        trial = self.core.complete_trial(request.trial_id, request.lease_id, _OUTCOMES[request.outcome],
                                         dict(request.metrics), dict(request.artifacts), request.error)
        self._ok("CompleteTrial")
        return pb.CompleteTrialResponse(trial=trial_pb(trial))

    @_translated
    def GetTrial(self, request, context):
        trial = self.core.get_trial(request.trial_id)
        self._ok("GetTrial")
        return pb.GetTrialResponse(trial=trial_pb(trial))

    @_translated
    def ListTrials(self, request, context):
        trials = self.core.list_trials(request.study_id, request.phase if request.has_phase else None,
                                      with_measurements=request.with_measurements)
        self._ok("ListTrials")
        return pb.ListTrialsResponse(trials=[trial_pb(t) for t in trials])

    @_translated
    def GetBestTrial(self, request, context):
        best = self.core.best_trial(request.study_id, request.phase if request.has_phase else None)
        self._ok("GetBestTrial")
        return pb.GetBestTrialResponse(trial=trial_pb(best) if best else None)

    @_translated_stream
    def WatchStudy(self, request, context):
        with self.core.subscribe(request.study_id) as events:
            self._ok("WatchStudy")
            yield self._event("snapshot", request.study_id, "")
            while context.is_active():
                try:
                    ev = events.get(timeout=0.5)
                except queue.Empty:
                    # Every event is sent before the end of the study is.
                    if self.core.get_study(request.study_id).state != ACTIVE:
                        yield self._event("study_finished", request.study_id, "")
                        return
                    continue
                if ev.kind != "study_finished":
                    yield self._event(ev.kind, ev.study_id, ev.trial_id)

    def _event(self, kind: str, study_id: str, trial_id: str) -> pb.WatchStudyResponse:
        study = self.core.get_study(study_id)
        best = self.core.best_trial(study_id, with_measurements=False)
        out = pb.WatchStudyResponse(event=kind, study=study_pb(study), time=_ts(self.core.clock()))
        if trial_id:
            t = trial_pb(self.core.get_trial(trial_id))
            last = list(t.measurements[-1:])
            del t.measurements[:]
            t.measurements.extend(last)  # only the newest epoch: watchers want progress, not history
            out.trial.CopyFrom(t)
        if best is not None:
            out.best_trial.CopyFrom(trial_pb(best))
        return out
