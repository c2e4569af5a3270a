"""gRPC servicer (asyncio): converts saga.v1 messages to core calls and errors to status codes.

Every core call runs on the pool of its kind (``admission``), never on the event loop; waiting
(long-polls, streams) happens on the loop and holds no thread.
"""
from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc

from saga.security.guard import Guard, Refusal
from saga.v1 import optimizer_pb2 as pb
from saga.v1 import optimizer_pb2_grpc as pb_grpc

from .admission import Admission
from .core import OptimizerCore, Progress
from .errors import (FailedPrecondition, InvalidArgument, NotFound, OptimizerError, PermissionDenied,
                     ResourceExhausted, Unavailable)
from .lease_broker import LeaseBroker
from .progress_batch import ProgressBatcher
from .messages import study_pb, timestamp, trial_pb
from .storage_errors import storage_error
from .watch import Watcher

log = logging.getLogger(__name__)

_CODES = {InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT, NotFound: grpc.StatusCode.NOT_FOUND,
          FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
          ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED, Unavailable: grpc.StatusCode.UNAVAILABLE,
          PermissionDenied: grpc.StatusCode.PERMISSION_DENIED}
_OUTCOMES = {pb.OUTCOME_SUCCEEDED: "SUCCEEDED", pb.OUTCOME_FAILED: "FAILED", pb.OUTCOME_INFEASIBLE: "INFEASIBLE",
             pb.OUTCOME_RELEASED: "RELEASED"}
_DECISIONS = {"continue": pb.CONTINUE, "stop_step": pb.STOP_STEP, "stop_trial": pb.STOP_TRIAL}
# Trailing metadata telling a client that the same request may pass after this many seconds
# (optimizer_svc.client retries RESOURCE_EXHAUSTED only when it is present).
RETRY_AFTER_KEY = "saga-retry-after-s"


def _translated(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(self: "OptimizerServicer", request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            response = await method(self, request, context)
        except Exception as e:  # noqa: BLE001 - translated into a status below
            await self._abort(method.__name__, e, context)
        finally:
            self.core.metrics.rpc_seconds.labels(method.__name__).observe(time.perf_counter() - started)
        self._count(method.__name__, "OK")
        return response
    return wrapper


def _translated_stream(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """``_translated`` for server-streaming methods: errors surface while iterating."""
    @functools.wraps(method)
    async def wrapper(self: "OptimizerServicer", request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for item in method(self, request, context):
                yield item
        except Exception as e:  # noqa: BLE001 - translated into a status below
            await self._abort(method.__name__, e, context)
    return wrapper


def _spec_project(spec_json: str) -> str | None:
    """The project a spec names (``default`` when none), or None when the core will refuse it anyway."""
    try:
        spec = json.loads(spec_json)
    except (ValueError, RecursionError):  # the core refuses it with the reason
        return None
    project = spec.get("project", "default") if isinstance(spec, dict) else None
    return project if isinstance(project, str) else None


class OptimizerServicer(pb_grpc.OptimizerServicer):
    def __init__(self, core: OptimizerCore, admission: Admission, broker: LeaseBroker, guard: Guard | None = None):
        """``guard``: with tokens, each call sees only the studies of its token's projects (another
        project's study is NOT_FOUND, as if it did not exist)."""
        self.core, self.admission, self.broker, self.guard = core, admission, broker, guard
        self.watcher = Watcher(core, admission)
        self.progress = ProgressBatcher(core, admission.progress)

    def _projects(self, context: grpc.aio.ServicerContext) -> frozenset[str] | None:
        """The projects the caller's token may see; None: all (no tokens, or a token for every project)."""
        if self.guard is None:
            return None
        auth = next((v for k, v in context.invocation_metadata() or () if k == "authorization"), None)
        who = self.guard.principal(auth if isinstance(auth, str) else None)
        if isinstance(who, Refusal):  # the token file changed since the interceptor's check
            return frozenset()
        return None if "*" in who.projects else who.projects

    def _visible(self, study_id: str, projects: frozenset[str] | None) -> None:
        """NotFound unless the caller may see the study (no check without project limits); runs on
        a pool thread."""
        if projects is not None and self.core.get_study(study_id).project not in projects:
            raise NotFound(f"study {study_id!r} not found")

    def _count(self, name: str, code: str) -> None:
        self.core.metrics.rpcs.labels(name, code).inc()

    async def _abort(self, name: str, error: Exception, context: grpc.aio.ServicerContext) -> None:
        """Domain and storage errors get their status code; anything else is a bug, logged and
        reported INTERNAL."""
        if isinstance(error, grpc.aio.AbortError):
            raise error
        domain = error if isinstance(error, OptimizerError) else storage_error(error)
        metadata: tuple[tuple[str, str], ...] = ()
        if domain is not None:
            code, message = _CODES.get(type(domain), grpc.StatusCode.INVALID_ARGUMENT), str(domain)
            retry_after = getattr(domain, "retry_after_s", 0.0)
            if retry_after:
                metadata = ((RETRY_AFTER_KEY, f"{retry_after:g}"),)
            if domain is not error:
                log.error("%s: %s", name, message)
        else:
            log.error("%s failed", name, exc_info=error)
            code, message = grpc.StatusCode.INTERNAL, f"{name}: internal error (see the optimizer log)"
        self._count(name, code.name)
        await context.abort(code, message, trailing_metadata=metadata)

    # Each handler builds its whole answer (core call and message) on a pool thread: the event
    # loop only routes, so the health check and waiting calls never queue behind a big message.
    @_translated
    async def CreateStudy(self, request, context):
        projects = self._projects(context)
        project = _spec_project(request.spec_json) if projects is not None else None
        if projects is not None and project is not None and project not in projects:
            allowed = ", ".join(sorted(projects)) or "no project"
            raise PermissionDenied(f"project: this token may create studies only in {allowed}, not in {project!r}")
        return await self.admission.call(
            lambda: pb.CreateStudyResponse(study=study_pb(self.core.create_study(request.spec_json))))

    @_translated
    async def GetStudy(self, request, context):
        projects = self._projects(context)

        def answer() -> pb.GetStudyResponse:
            self._visible(request.study_id, projects)
            return pb.GetStudyResponse(study=study_pb(self.core.get_study(request.study_id)))
        return await self.admission.call(answer)

    @_translated
    async def ListStudies(self, request, context):
        projects = self._projects(context)
        return await self.admission.call(
            lambda: pb.ListStudiesResponse(studies=[study_pb(s) for s in self.core.list_studies()
                                                    if projects is None or s.project in projects]))

    @_translated
    async def StopStudy(self, request, context):
        projects = self._projects(context)

        def answer() -> pb.StopStudyResponse:
            self._visible(request.study_id, projects)
            return pb.StopStudyResponse(study=study_pb(self.core.stop_study(request.study_id, request.reason)))
        return await self.admission.call(answer)

    @_translated
    async def LeaseTrial(self, request, context):
        # Never wait past the client's own deadline.
        remaining = context.time_remaining()
        timeout = request.timeout_seconds
        if remaining is not None and timeout > 0:
            timeout = max(0.0, min(timeout, remaining - 0.5))
        if not timeout >= 0:  # also NaN
            raise InvalidArgument("timeout_seconds: must be a number >= 0")
        got = await self.broker.lease(request.worker_id, request.study_id, timeout, request.request_id,
                                      self._projects(context))
        if got is None:
            return pb.LeaseTrialResponse()
        trial, lease = got
        return pb.LeaseTrialResponse(trial=trial_pb(trial), lease=pb.Lease(id=lease.id, deadline=timestamp(lease.deadline)))

    @_translated
    async def ReportProgress(self, request, context):
        report = Progress(request.trial_id, request.lease_id, request.step, request.epoch, dict(request.metrics))
        answer = None
        if not self.progress.busy:
            with self.core.uncontended() as free:
                if free:  # a short write, nothing to wait for: answered in place, without a thread hop
                    answer = self.core.report_progress(*report)
        decision, reason, deadline = answer or await self.progress.report(report)
        return pb.ReportProgressResponse(decision=_DECISIONS[decision], reason=reason,
                                         lease_deadline=timestamp(deadline))

    @_translated
    async def CompleteTrial(self, request, context):
        if request.outcome not in _OUTCOMES:
            raise InvalidArgument("outcome: must be OUTCOME_SUCCEEDED, OUTCOME_FAILED, OUTCOME_INFEASIBLE or "
                                  "OUTCOME_RELEASED")
        return await self.admission.call(lambda: pb.CompleteTrialResponse(trial=trial_pb(self.core.complete_trial(
            request.trial_id, request.lease_id, _OUTCOMES[request.outcome], dict(request.metrics),
            dict(request.artifacts), request.error))))

    @_translated
    async def GetTrial(self, request, context):
        projects = self._projects(context)

        def answer() -> pb.GetTrialResponse:
            trial = self.core.get_trial(request.trial_id)
            if projects is not None and self.core.get_study(trial.study_id).project not in projects:
                raise NotFound(f"trial {request.trial_id!r} not found")
            return pb.GetTrialResponse(trial=trial_pb(trial))
        return await self.admission.call(answer)

    @_translated
    async def ListTrials(self, request, context):
        projects = self._projects(context)

        def answer() -> pb.ListTrialsResponse:
            self._visible(request.study_id, projects)
            trials = self.core.list_trials(request.study_id, request.phase if request.has_phase else None,
                                           request.with_measurements)
            return pb.ListTrialsResponse(trials=[trial_pb(t) for t in trials])
        return await self.admission.call(answer)

    @_translated
    async def GetBestTrial(self, request, context):
        projects = self._projects(context)

        def answer() -> pb.GetBestTrialResponse:
            self._visible(request.study_id, projects)
            best = self.core.best_trial(request.study_id, request.phase if request.has_phase else None)
            return pb.GetBestTrialResponse(trial=trial_pb(best) if best else None)
        return await self.admission.call(answer)

    @_translated_stream
    async def WatchStudy(self, request, context):
        projects = self._projects(context)
        if projects is not None:
            await self.admission.call(lambda: self._visible(request.study_id, projects))
        with self.admission.stream_slot():
            first = True
            async for message in self.watcher.stream(request.study_id):
                if first:
                    self._count("WatchStudy", "OK")
                    first = False
                yield message
