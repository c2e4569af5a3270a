"""Bulkheads between kinds of calls, so that waiting calls never starve short ones.

The server is asyncio: a LeaseTrial long-poll or a WatchStudy stream that waits holds no thread,
only a coroutine. Work on the core (SQLite, GP fits) runs on small thread pools, one per kind, so a
slow proposal or a flood of watch events cannot delay ReportProgress, CompleteTrial or the reads,
and heartbeats never queue behind a burst of completions (hundreds of trials that end together);
the health check never leaves the event loop. Open streams and parked long-polls are
capped; beyond a cap the caller gets RESOURCE_EXHAUSTED with a retry hint instead of a slow death.
"""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from .errors import ResourceExhausted

T = TypeVar("T")
# What a refused stream or long-poll is told to wait before trying again.
RETRY_AFTER_S = 5.0


@dataclass(frozen=True)
class Limits:
    """Sizes of the bulkheads. The defaults serve several hundred workers on a small machine."""

    max_streams: int = 256        # open WatchStudy streams
    max_lease_waits: int = 2048   # LeaseTrial calls parked waiting for a trial
    call_threads: int = 8         # short calls: completions, reads, study changes
    progress_threads: int = 1     # batches of ReportProgress that found the core busy (one at a time)
    lease_threads: int = 4        # lease attempts, which may fit a GP (serialised per study)
    watch_threads: int = 2        # building the messages of watch events

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be an integer >= 1, got {value!r}")


class Admission:
    """The pools and counters of one server. Async methods run only on the server's event loop."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._calls = ThreadPoolExecutor(limits.call_threads, thread_name_prefix="rpc-call")
        self._progress = ThreadPoolExecutor(limits.progress_threads, thread_name_prefix="rpc-progress")
        self._leases = ThreadPoolExecutor(limits.lease_threads, thread_name_prefix="rpc-lease")
        self._watch = ThreadPoolExecutor(limits.watch_threads, thread_name_prefix="rpc-watch")
        self.streams = 0

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(self._calls, fn, *args)

    async def progress(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(self._progress, fn, *args)

    async def lease(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(self._leases, fn, *args)

    async def watch(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(self._watch, fn, *args)

    @contextmanager
    def stream_slot(self) -> Iterator[None]:
        """One open stream; ResourceExhausted when ``max_streams`` are open."""
        if self.streams >= self.limits.max_streams:
            raise ResourceExhausted(f"too many open WatchStudy streams ({self.limits.max_streams}); "
                                    f"retry in {RETRY_AFTER_S:.0f}s", retry_after_s=RETRY_AFTER_S)
        self.streams += 1
        try:
            yield
        finally:
            self.streams -= 1

    def shutdown(self) -> None:
        """Waits for the core calls in progress, then stops the pools."""
        for pool in (self._calls, self._progress, self._leases, self._watch):
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    async def _run(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))
