"""In-process publish/subscribe of study events, for WatchStudy."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field


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
        self._max = max_queue

    def subscribe(self, study_id: str) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize=self._max)
        with self._lock:
            self._subs.setdefault(study_id, set()).add(q)
        return q

    def unsubscribe(self, study_id: str, q: queue.Queue) -> None:
        with self._lock:
            self._subs.get(study_id, set()).discard(q)

    def publish(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs.get(event.study_id, ()))
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
