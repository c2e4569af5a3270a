"""A client of the Optimizer service for workers and the CLI: deadlines on every call, retries of
transient failures, and status codes mapped back to the core's exceptions.

Retried: UNAVAILABLE (restarting, unreachable, its database failing), DEADLINE_EXCEEDED (busy), and
RESOURCE_EXHAUSTED when the server says the same request may pass later (a full disk, too many
waiting calls; its ``saga-retry-after-s`` trailer), with jittered backoff for ``retry_for`` seconds
(None: until answered or aborted). An outage is logged when it starts and then once a minute.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from typing import Any, Callable, Iterator, TypeVar

import grpc

from saga.security import channels
from saga.security.tls import is_handshake_failure
from saga.v1 import optimizer_pb2 as pb
from saga.v1 import optimizer_pb2_grpc as pb_grpc

from .errors import (FailedPrecondition, InvalidArgument, NotFound, OptimizerError, PermissionDenied,
                     ResourceExhausted, Unauthenticated, Unavailable)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Unary calls answer in milliseconds; 30 s leaves room for a busy 2-core node without hanging forever.
DEFAULT_DEADLINE_S = 30.0
# Codes worth another try: the service is restarting or briefly overloaded.
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument, grpc.StatusCode.NOT_FOUND: NotFound,
           grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
           grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
           grpc.StatusCode.UNAUTHENTICATED: Unauthenticated, grpc.StatusCode.PERMISSION_DENIED: PermissionDenied}
RETRY_AFTER_KEY = "saga-retry-after-s"  # the servicer's trailer (optimizer_svc.servicer)
MAX_BACKOFF_S = 5.0
OUTAGE_LOG_EVERY_S = 60.0
# grpcio waits up to 120 s between reconnection attempts by default: after a long outage a client
# would stay away for minutes after the optimizer is back. Keep the wait short.
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 500), ("grpc.min_reconnect_backoff_ms", 500),
                   ("grpc.max_reconnect_backoff_ms", 5000))
_DEFAULT = object()
_OUTCOMES = {"SUCCEEDED": pb.OUTCOME_SUCCEEDED, "FAILED": pb.OUTCOME_FAILED, "INFEASIBLE": pb.OUTCOME_INFEASIBLE,
             "RELEASED": pb.OUTCOME_RELEASED}
DECISIONS = {pb.CONTINUE: "continue", pb.STOP_STEP: "stop_step", pb.STOP_TRIAL: "stop_trial"}


class OptimizerClient:
    def __init__(self, target: str, *, deadline: float = DEFAULT_DEADLINE_S, retry_for: float | None = 60.0,
                 abort: threading.Event | None = None, security: channels.ClientSecurity | None = None):
        """``retry_for``: seconds to retry a transient failure (None: forever); methods taking
        ``retry_for`` override it per call. ``abort``: once set, calls stop retrying (a worker
        shutting down must not wait a minute). ``security``: TLS and token (None: plain text, no
        token; entry points pass ``ClientSecurity.from_env()`` or ``from_args``)."""
        self.target = target
        self.security = security
        self.deadline = deadline
        self.retry_for = retry_for
        self.abort = abort or threading.Event()
        self._channel = channels.channel(target, security, CHANNEL_OPTIONS, attach_token=False)
        self.stub = pb_grpc.OptimizerStub(self._channel)
        self._outage_lock = threading.Lock()
        self._outage_since: float | None = None
        self._outage_logged = 0.0

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The token as call metadata (None without one), current after a rotation of its file;
        pass it on calls made on ``stub`` directly."""
        return self.security.metadata() or None if self.security is not None else None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "OptimizerClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, fn: Callable[..., T], request: Any, deadline: float | None = None, retry: bool = True,
              retry_for: Any = _DEFAULT) -> T:
        budget = (self.retry_for if retry_for is _DEFAULT else retry_for) if retry else 0.0
        give_up = None if budget is None else time.monotonic() + budget
        delay = 0.2
        while True:
            try:
                result = fn(request, timeout=deadline or self.deadline, metadata=self.metadata)
                self._outage_over()
                return result
            except grpc.RpcError as e:
                code, details = e.code(), e.details()
                # A failed TLS handshake (wrong CA, expired certificate) does not heal by waiting.
                wait = None if is_handshake_failure(details) else _retry_wait(e, delay)
                if wait is not None and (give_up is None or time.monotonic() + wait < give_up) \
                        and not self.abort.is_set():
                    self._outage(code, details)
                    self.abort.wait(wait)
                    delay = min(delay * 2, MAX_BACKOFF_S)
                    continue
                raise self._error(code, details) from None

    def _error(self, code: grpc.StatusCode, details: str) -> OptimizerError:
        if code in _TRANSIENT:
            return Unavailable(f"optimizer at {self.target}: {code.name}: {details}"
                               f"{channels.hint(details, self.security)}")
        if code in _ERRORS:
            return _ERRORS[code](details)
        return OptimizerError(f"optimizer at {self.target}: {code.name}: {details}")

    def _outage(self, code: grpc.StatusCode, details: str) -> None:
        """Logs an outage when it starts, then once a minute while it lasts."""
        now = time.monotonic()
        with self._outage_lock:
            if self._outage_since is None:
                self._outage_since = self._outage_logged = now
                log.warning("optimizer at %s: %s (%s); retrying", self.target, code.name, details)
            elif now - self._outage_logged >= OUTAGE_LOG_EVERY_S:
                self._outage_logged = now
                log.warning("optimizer at %s: still %s after %.0fs; retrying", self.target, code.name,
                            now - self._outage_since)

    def _outage_over(self) -> None:
        if self._outage_since is not None:
            with self._outage_lock:
                if self._outage_since is not None:
                    log.info("optimizer at %s answers again after %.0fs", self.target,
                             time.monotonic() - self._outage_since)
                    self._outage_since = None

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
    def lease_trial(self, worker_id: str, *, study_id: str = "", wait: float = 10.0,
                    retry_for: Any = _DEFAULT) -> tuple[pb.Trial, pb.Lease] | None:
        # One request id for this call and all its retries: a retry gets what an answer lost on
        # the way granted, never a second trial.
        request = pb.LeaseTrialRequest(worker_id=worker_id, study_id=study_id, timeout_seconds=wait,
                                       request_id=uuid.uuid4().hex)
        resp = self._call(self.stub.LeaseTrial, request, deadline=wait + self.deadline, retry_for=retry_for)
        return (resp.trial, resp.lease) if resp.HasField("trial") else None

    def report_progress(self, trial_id: str, lease_id: str, step: str, epoch: int,
                        metrics: dict[str, float], *, retry_for: Any = _DEFAULT) -> tuple[str, str]:
        resp = self._call(self.stub.ReportProgress, pb.ReportProgressRequest(
            trial_id=trial_id, lease_id=lease_id, step=step, epoch=epoch, metrics=metrics), retry_for=retry_for)
        return DECISIONS.get(resp.decision, "continue"), resp.reason

    def heartbeat(self, trial_id: str, lease_id: str, *, retry_for: Any = _DEFAULT) -> tuple[str, str]:
        return self.report_progress(trial_id, lease_id, "", 0, {}, retry_for=retry_for)

    def complete_trial(self, trial_id: str, lease_id: str, outcome: str, *, metrics: dict[str, float] | None = None,
                       artifacts: dict[str, str] | None = None, error: str = "",
                       retry_for: Any = _DEFAULT) -> pb.Trial:
        return self._call(self.stub.CompleteTrial, pb.CompleteTrialRequest(
            trial_id=trial_id, lease_id=lease_id, outcome=_OUTCOMES[outcome], metrics=metrics or {},
            artifacts=artifacts or {}, error=error), retry_for=retry_for).trial

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
            yield from self.stub.WatchStudy(pb.WatchStudyRequest(study_id=study_id), metadata=self.metadata)
        except grpc.RpcError as e:
            raise self._error(e.code(), e.details()) from None


def _retry_wait(error: grpc.RpcError, delay: float) -> float | None:
    """Seconds to wait before retrying ``error``, or None if retrying cannot help."""
    code = error.code()
    if code in _TRANSIENT:
        return random.uniform(delay / 2, delay)  # jitter: workers that lost the optimizer together spread out
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        for key, value in (error.trailing_metadata() or ()):
            if key == RETRY_AFTER_KEY:
                try:
                    return random.uniform(0.5, 1.0) * max(float(value), delay)
                except ValueError:
                    return delay
    return None


def parameters(trial: pb.Trial) -> dict[str, Any]:
    """A trial's parameters as plain Python values."""
    return {k: getattr(v, v.WhichOneof("value")) for k, v in trial.parameters.items() if v.WhichOneof("value")}
