"""LeaseTrial long-polls on the event loop: waiting costs no thread, and no grant is orphaned.

A call tries the core once; if nothing is leasable it parks until the core reports a change that
can make a trial leasable (a completion, an expiry, a new study) or its time is up. A change wakes
one parked call; one that gets a trial wakes the next, so a completion costs one attempt, not one
per idle worker. A call for a study that has ended answers "no trial" at once, and wakes the next
call waiting for that study: its workers hear of the end when it happens, not when their wait is up.

Grants reach their worker exactly once:
- a retry carrying the same ``request_id`` while the first call still runs joins that call;
- a retry after the first call granted a trial gets that trial (the core looks the request id up);
- a grant made after every caller of its request has gone (deadline, cancel) is put back at once,
  without using an attempt, instead of sitting leased to nobody until its lease expires.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Optional

from .admission import RETRY_AFTER_S, Admission
from .core import MAX_LEASE_WAIT_S, OptimizerCore
from .errors import ResourceExhausted
from .views import Lease, TrialView

log = logging.getLogger(__name__)
Granted = Optional[tuple[TrialView, Lease]]


@dataclass
class _Request:
    task: "asyncio.Task[Granted]"
    callers: int = 0
    parked: Optional["asyncio.Future[None]"] = None


class LeaseBroker:
    """Runs on one event loop; ``core`` calls go through ``admission``'s lease pool."""

    def __init__(self, core: OptimizerCore, admission: Admission, loop: asyncio.AbstractEventLoop):
        self.core, self.admission, self._loop = core, admission, loop
        self._parked: deque[tuple[str, asyncio.Future[None]]] = deque()
        self._requests: dict[str, _Request] = {}
        self._tasks: set[asyncio.Task[Granted]] = set()
        core.add_change_listener(self._changed)

    @property
    def waiting(self) -> int:
        return len(self._parked)

    async def lease(self, worker_id: str, study_id: str, timeout: float, request_id: str,
                    projects: frozenset[str] | None = None) -> Granted:
        """The trial for this request (see the module doc), waiting up to ``timeout`` seconds;
        ``projects``: only of those projects' studies (a worker token limited to projects)."""
        req = self._requests.get(request_id) if request_id else None
        if req is None or req.task.done():
            req = _Request(task=None)  # type: ignore[arg-type]
            req.task = self._loop.create_task(self._serve(req, worker_id, study_id, timeout, request_id,
                                                             projects))
            req.task.add_done_callback(_retrieve)
            self._tasks.add(req.task)
            req.task.add_done_callback(self._tasks.discard)
            if request_id:
                self._requests[request_id] = req
                req.task.add_done_callback(lambda _, rid=request_id, r=req: self._forget(rid, r))
        req.callers += 1
        try:
            return await asyncio.shield(req.task)
        finally:
            req.callers -= 1
            if req.callers == 0 and not req.task.done() and req.parked is not None and not req.parked.done():
                req.parked.set_result(None)  # nobody waits for it any more: stop waiting

    async def _serve(self, req: _Request, worker_id: str, study_id: str, timeout: float,
                     request_id: str, projects: frozenset[str] | None) -> Granted:
        give_up = self._loop.time() + min(timeout, MAX_LEASE_WAIT_S)
        while True:
            seen = self.core.change_seq
            try:
                got = await self.admission.lease(self.core.lease_trial, worker_id, study_id, 0.0, request_id,
                                                  projects)
            except Exception:
                self._wake(study_id)  # the turn passes on, whatever went wrong with this call
                raise
            if got is not None:
                if req.callers == 0:
                    await self.admission.lease(self.core.release_grant, got[0].id, got[1].id)
                    self._wake(study_id)
                    return None
                self._wake(study_id)  # there may be more to lease: pass the turn on
                return got
            remaining = give_up - self._loop.time()
            if remaining <= 0 or req.callers == 0:
                return None
            if study_id and not await self.admission.lease(self.core.study_active, study_id):
                self._wake(study_id)  # the study has ended: so learns the next call waiting for it
                return None
            if self.core.change_seq != seen:
                continue  # something changed while we looked: look again before parking
            if len(self._parked) >= self.admission.limits.max_lease_waits:
                raise ResourceExhausted(f"too many LeaseTrial calls waiting ({len(self._parked)}); "
                                        f"retry in {RETRY_AFTER_S:.0f}s", retry_after_s=RETRY_AFTER_S)
            await self._park(req, study_id, remaining)
            if req.callers == 0:
                self._wake(study_id)  # we were woken but nobody waits for us: wake another
                return None

    async def _park(self, req: _Request, study_id: str, timeout: float) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        entry = (study_id, fut)
        self._parked.append(entry)
        req.parked = fut
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            req.parked = None
            try:
                self._parked.remove(entry)
            except ValueError:
                pass  # already taken off by _wake

    def close(self) -> None:
        """Ends every waiting call (the server is stopping); runs on the loop."""
        for task in list(self._tasks):
            task.cancel()
        for _, fut in list(self._parked):
            fut.cancel()

    def _changed(self, study_id: str) -> None:
        """Core listener: runs on a core thread, under the core's lock; only hands over."""
        try:
            self._loop.call_soon_threadsafe(self._wake, study_id)
        except RuntimeError:  # the loop has shut down
            pass

    def _wake(self, study_id: str) -> None:
        """Wakes the longest-waiting call that a change in ``study_id`` ('' = any) may serve."""
        for entry in list(self._parked):
            wanted, fut = entry
            if fut.done():
                continue
            if not wanted or not study_id or wanted == study_id:
                self._parked.remove(entry)
                fut.set_result(None)
                return

    def _forget(self, request_id: str, req: _Request) -> None:
        if self._requests.get(request_id) is req:
            del self._requests[request_id]


def _retrieve(task: "asyncio.Task[Granted]") -> None:
    """Marks a failure as seen: callers that left (shield) no longer read it, and it is no bug."""
    if not task.cancelled():
        task.exception()
