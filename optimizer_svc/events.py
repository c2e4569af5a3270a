"""In-process publish/subscribe of study events, for WatchStudy."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Event:
    study_id: str
    kind: str              # trial_created, trial_leased, progress, trial_finished, trial_requeued, ...
    trial_id: str = ""
    time: float = field(default_factory=time.time)


class EventBus:
    """Fan-out of events to per-subscriber queues; a slow subscriber drops its oldest events."""

    def __init__(self, max_queue: int = 1000):
        self._lock = threading.Lock()
        self._subs: dict[str, set[queue.Queue]] = {}
        self._wakers: dict[queue.Queue, Callable[[], None]] = {}
        self._max = max_queue

    def subscribe(self, study_id: str, on_event: Callable[[], None] | None = None) -> queue.Queue:
        """A queue of the study's events; ``on_event()`` is called (on the publishing thread) after
        each put, for subscribers that wait on something other than the queue (an event loop)."""
        q: queue.Queue = queue.Queue(maxsize=self._max)
        with self._lock:
            self._subs.setdefault(study_id, set()).add(q)
            if on_event is not None:
                self._wakers[q] = on_event
        return q

    def unsubscribe(self, study_id: str, q: queue.Queue) -> None:
        with self._lock:
            subs = self._subs.get(study_id)
            if subs is not None:
                subs.discard(q)
                if not subs:
                    del self._subs[study_id]
            self._wakers.pop(q, None)

    def publish(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs.get(event.study_id, ()))
            wakers = [self._wakers[q] for q in subs if q in self._wakers]
        for q in subs:
            while True:
                try:
                    q.put_nowait(event)
                    break
                except queue.Full:
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass
        for wake in wakers:
            wake()
