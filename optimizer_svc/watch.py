"""WatchStudy streams on the event loop: a quiet stream holds no thread, and an event watched by
many clients is turned into a message once, not once per stream."""
from __future__ import annotations

import asyncio
import queue
from collections import OrderedDict
from typing import AsyncIterator

from saga.v1 import optimizer_pb2 as pb

from .admission import Admission
from .core import OptimizerCore
from .events import Event
from .messages import study_pb, timestamp, trial_pb
from .views import ACTIVE

# A quiet stream looks at the study this often, in case its end was missed.
IDLE_CHECK_S = 5.0
_CACHED_EVENTS = 256


class Watcher:
    """Builds watch messages for one server; async methods run on its event loop."""

    def __init__(self, core: OptimizerCore, admission: Admission):
        self.core, self.admission = core, admission
        self._built: OrderedDict[Event, asyncio.Future[pb.WatchStudyResponse]] = OrderedDict()

    async def stream(self, study_id: str) -> AsyncIterator[pb.WatchStudyResponse]:
        """Events of ``study_id`` until it ends (NotFound if it does not exist); every event is sent
        before the end of the study is."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def on_event() -> None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has shut down
                pass

        await self.admission.call(self.core.get_study, study_id)
        events = self.core.events.subscribe(study_id, on_event)
        try:
            yield await self.admission.watch(self._message, "snapshot", study_id, "")
            while True:
                quiet = False
                try:
                    await asyncio.wait_for(wake.wait(), IDLE_CHECK_S)
                except asyncio.TimeoutError:
                    quiet = True
                wake.clear()
                finished = False
                while True:
                    try:
                        ev = events.get_nowait()
                    except queue.Empty:
                        break
                    if ev.kind == "study_finished":
                        finished = True
                    else:
                        yield await self._shared(ev)
                if not (finished or quiet):
                    continue
                study = await self.admission.call(self.core.get_study, study_id)
                if study.state != ACTIVE:
                    yield await self.admission.watch(self._message, "study_finished", study_id, "")
                    return
        finally:
            self.core.events.unsubscribe(study_id, events)

    async def _shared(self, ev: Event) -> pb.WatchStudyResponse:
        """The message of ``ev``, built once for every stream that sends it."""
        fut = self._built.get(ev)
        if fut is None:
            fut = asyncio.ensure_future(self.admission.watch(self._message, ev.kind, ev.study_id, ev.trial_id))
            self._built[ev] = fut
            while len(self._built) > _CACHED_EVENTS:
                self._built.popitem(last=False)
        return await asyncio.shield(fut)

    def _message(self, kind: str, study_id: str, trial_id: str) -> pb.WatchStudyResponse:
        study = self.core.get_study(study_id)
        best = self.core.best_trial(study_id, with_measurements=False)
        out = pb.WatchStudyResponse(event=kind, study=study_pb(study), time=timestamp(self.core.clock()))
        if trial_id:
            t = trial_pb(self.core.get_trial(trial_id))
            last = list(t.measurements[-1:])
            del t.measurements[:]
            t.measurements.extend(last)  # only the newest epoch: watchers want progress, not history
            out.trial.CopyFrom(t)
        if best is not None:
            out.best_trial.CopyFrom(trial_pb(best))
        return out
