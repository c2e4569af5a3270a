"""A client of the Optimizer service for workers and the CLI: deadlines on every call, retries of
transient failures, and status codes mapped back to the core's exceptions."""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

import grpc

from saga.v1 import optimizer_pb2 as pb
from saga.v1 import optimizer_pb2_grpc as pb_grpc

from .errors import FailedPrecondition, InvalidArgument, NotFound, OptimizerError, ResourceExhausted

log = logging.getLogger(__name__)
T = TypeVar("T")

# Unary calls answer in milliseconds; 30 s leaves room for a busy 2-core node without hanging forever.
DEFAULT_DEADLINE_S = 30.0
# Codes worth another try: the service is restarting or briefly overloaded.
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument, grpc.StatusCode.NOT_FOUND: NotFound,
           grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
           grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted}
_OUTCOMES = {"SUCCEEDED": pb.OUTCOME_SUCCEEDED, "FAILED": pb.OUTCOME_FAILED, "INFEASIBLE": pb.OUTCOME_INFEASIBLE,
             "RELEASED": pb.OUTCOME_RELEASED}
DECISIONS = {pb.CONTINUE: "continue", pb.STOP_STEP: "stop_step", pb.STOP_TRIAL: "stop_trial"}


class Unavailable(OptimizerError):
    """The service could not be reached within the retry budget."""


class OptimizerClient:
    def __init__(self, target: str, *, deadline: float = DEFAULT_DEADLINE_S, retry_for: float = 60.0,
                 abort: threading.Event | None = None):
        """``abort``: once set, calls stop retrying (a worker shutting down must not wait a minute)."""
        self.target = target
        self.deadline = deadline
        self.retry_for = retry_for
        self.abort = abort or threading.Event()
        self._channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.OptimizerStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "OptimizerClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, fn: Callable[..., T], request: Any, deadline: float | None = None, retry: bool = True) -> T:
        give_up = time.monotonic() + (self.retry_for if retry else 0)
        delay = 0.2
        while True:
            try:
                return fn(request, timeout=deadline or self.deadline)
            except grpc.RpcError as e:
                code = e.code()
                if code in _TRANSIENT and time.monotonic() < give_up and not self.abort.is_set():
                    log.warning("optimizer at %s: %s; retrying in %.1fs", self.target, code.name, delay)
                    self.abort.wait(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if code in _ERRORS:
                    raise _ERRORS[code](e.details()) from None
                if code in _TRANSIENT:
                    raise Unavailable(f"optimizer at {self.target}: {code.name}: {e.details()}") from None
                raise OptimizerError(f"optimizer at {self.target}: {code.name}: {e.details()}") from None

    # -- studies
    def create_study(self, spec: dict[str, Any] | str) -> pb.Study:
        text = spec if isinstance(spec, str) else json.dumps(spec)
        return self._call(self.stub.CreateStudy, pb.CreateStudyRequest(spec_json=text), retry=False).study

    def get_study(self, study_id: str) -> pb.Study:
        return self._call(self.stub.GetStudy, pb.GetStudyRequest(study_id=study_id)).study

    def list_studies(self) -> list[pb.Study]:
        return list(self._call(self.stub.ListStudies, pb.ListStudiesRequest()).studies)

    def stop_study(self, study_id: str, reason: str = "") -> pb.Study:
        return self._call(self.stub.StopStudy, pb.StopStudyRequest(study_id=study_id, reason=reason)).study

    # -- trials
    def lease_trial(self, worker_id: str, *, study_id: str = "", wait: float = 10.0) -> tuple[pb.Trial, pb.Lease] | None:
        resp = self._call(self.stub.LeaseTrial, pb.LeaseTrialRequest(worker_id=worker_id, study_id=study_id,
                                                                      timeout_seconds=wait),
                          deadline=wait + self.deadline)
        return (resp.trial, resp.lease) if resp.HasField("trial") else None

    def report_progress(self, trial_id: str, lease_id: str, step: str, epoch: int,
                        metrics: dict[str, float]) -> tuple[str, str]:
        resp = self._call(self.stub.ReportProgress, pb.ReportProgressRequest(
            trial_id=trial_id, lease_id=lease_id, step=step, epoch=epoch, metrics=metrics))
        return DECISIONS.get(resp.decision, "continue"), resp.reason

    def heartbeat(self, trial_id: str, lease_id: str) -> tuple[str, str]:
        return self.report_progress(trial_id, lease_id, "", 0, {})

    def complete_trial(self, trial_id: str, lease_id: str, outcome: str, *, metrics: dict[str, float] | None = None,
                       artifacts: dict[str, str] | None = None, error: str = "") -> pb.Trial:
        return self._call(self.stub.CompleteTrial, pb.CompleteTrialRequest(
            trial_id=trial_id, lease_id=lease_id, outcome=_OUTCOMES[outcome], metrics=metrics or {},
            artifacts=artifacts or {}, error=error)).trial

    def get_trial(self, trial_id: str) -> pb.Trial:
        return self._call(self.stub.GetTrial, pb.GetTrialRequest(trial_id=trial_id)).trial

    def list_trials(self, study_id: str, phase: int | None = None,
                    with_measurements: bool = False) -> list[pb.Trial]:
        req = pb.ListTrialsRequest(study_id=study_id, phase=phase or 0, has_phase=phase is not None,
                                   with_measurements=with_measurements)
        return list(self._call(self.stub.ListTrials, req).trials)

    def best_trial(self, study_id: str, phase: int | None = None) -> pb.Trial | None:
        req = pb.GetBestTrialRequest(study_id=study_id, phase=phase or 0, has_phase=phase is not None)
        resp = self._call(self.stub.GetBestTrial, req)
        return resp.trial if resp.HasField("trial") else None

    def watch(self, study_id: str) -> Iterator[pb.WatchStudyResponse]:
        """Study events until the study ends; no deadline, since a study can run for days."""
        try:
            yield from self.stub.WatchStudy(pb.WatchStudyRequest(study_id=study_id))
        except grpc.RpcError as e:
            if e.code() in _ERRORS:
                raise _ERRORS[e.code()](e.details()) from None
            raise OptimizerError(f"optimizer at {self.target}: {e.code().name}: {e.details()}") from None


def parameters(trial: pb.Trial) -> dict[str, Any]:
    """A trial's parameters as plain Python values."""
    return {k: getattr(v, v.WhichOneof("value")) for k, v in trial.parameters.items() if v.WhichOneof("value")}
