"""How training tells the outside world about progress, and hears back whether to stop.

The optimizer decides stopping centrally; the training code only sees a :class:`Reporter`.
The worker loop implements it over gRPC (ReportProgress), tests implement it in-process.
"""
from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import keras


class Decision(str, enum.Enum):
    """The answer to a progress report."""

    CONTINUE = "continue"
    STOP_STEP = "stop_step"    # end this step, go on with the next one
    STOP_TRIAL = "stop_trial"  # end the trial now, skipping the remaining steps


@runtime_checkable
class Reporter(Protocol):
    """Receives per-epoch metrics and keeps the trial alive during long epochs."""

    def report(self, step: str, epoch: int, metrics: dict[str, float]) -> Decision | str:
        """Called after every epoch (``epoch`` is 0-based within ``step``); ``metrics`` holds
        finite numbers only. Returns what to do next. May raise to abort training (e.g. when
        the lease is lost); the exception propagates out of training unchanged."""

    def heartbeat(self) -> None:
        """Called at most every ``heartbeat_every_s`` seconds while batches run."""


class NullReporter:
    """A reporter that never stops training; for local runs and benchmarks."""

    def report(self, step: str, epoch: int, metrics: dict[str, float]) -> Decision:
        return Decision.CONTINUE

    def heartbeat(self) -> None:
        return None


class ReporterCallback(keras.callbacks.Callback):
    """Bridges Keras epochs to a :class:`Reporter` and applies its decision.

    A non-finite metric is never reported (the wire only takes finite numbers): the callback
    stops training and records it in ``non_finite`` so the caller can raise InfeasibleTrial.
    """

    def __init__(self, reporter: Reporter, step: str, heartbeat_every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.reporter = reporter
        self.step = step
        self.heartbeat_every_s = heartbeat_every_s
        self.decision = Decision.CONTINUE
        self.non_finite: dict[str, float] = {}
        self._clock = clock
        self._last_beat = clock()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._last_beat = self._clock()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = self._clock()
        if now - self._last_beat >= self.heartbeat_every_s:
            self._last_beat = now
            self.reporter.heartbeat()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            self.non_finite = bad
            self.model.stop_training = True
            return
        decision = Decision(self.reporter.report(self.step, epoch, metrics))
        self._last_beat = self._clock()  # a report extends the lease as much as a heartbeat
        if decision is not Decision.CONTINUE:
            self.decision = decision
            self.model.stop_training = True


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
