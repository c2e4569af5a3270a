"""ReportProgress calls that arrive while the core is busy, stored in batches (group commit).

Hundreds of trainers heartbeat every few hundred milliseconds. Answered one by one on a thread pool,
each report waits for a thread, then for the core's lock, then commits alone; under a burst the
threads queue behind each other and every report pays a lock turn and a commit. Here the reports
that find the core busy wait on the event loop (no thread each); one batch at a time takes all that
are waiting (up to ``MAX_BATCH``) and stores them with ``OptimizerCore.report_progress_many``: one
turn of the lock, one commit, each report still answered on its own (a refused one gets its own
error; the rest are stored). A caller that leaves early (deadline) does not remove its report, as a
call already running on a thread would not be undone either.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable

from .core import OptimizerCore, Progress

MAX_BATCH = 256   # reports per transaction: a batch takes tens of milliseconds at most

Answer = tuple[str, str, float]


class ProgressBatcher:
    """Runs on one event loop; ``run_batch(fn, reports)`` runs the core call off the loop."""

    def __init__(self, core: OptimizerCore, run_batch: Callable[..., Awaitable[Any]]):
        self.core, self._run = core, run_batch
        self._waiting: deque[tuple[Progress, asyncio.Future[Answer]]] = deque()
        self._busy = False

    @property
    def busy(self) -> bool:
        """A batch is being stored, or reports wait for the next: a new one must queue behind them."""
        return self._busy or bool(self._waiting)

    async def report(self, report: Progress) -> Answer:
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((report, fut))
        if not self._busy:
            self._next()
        return await fut

    def _next(self) -> None:
        batch = [self._waiting.popleft() for _ in range(min(MAX_BATCH, len(self._waiting)))]
        if not batch:
            return
        self._busy = True
        task = asyncio.ensure_future(self._run(self.core.report_progress_many, [r for r, _ in batch]))
        task.add_done_callback(lambda done: self._answer(batch, done))

    def _answer(self, batch: list[tuple[Progress, "asyncio.Future[Answer]"]], done: "asyncio.Future[Any]") -> None:
        self._busy = False
        try:
            error = done.exception()  # the database failed: nothing of the batch is stored
            answers = [error] * len(batch) if error is not None else done.result()
        except asyncio.CancelledError as e:  # the server is stopping
            answers = [e] * len(batch)
        for (_, fut), answer in zip(batch, answers):
            if fut.done():  # its caller left
                continue
            if isinstance(answer, BaseException):
                fut.set_exception(answer)
            else:
                fut.set_result(answer)
        self._next()
