"""``Trial``: one ask/tell trial under a lease — its parameters, per-epoch reports that the optimizer's
stopping rules answer, and the completion that makes it an observation.

The lease is kept alive by a background heartbeat (a third of the lease time), so an epoch may take
longer than the lease; if this process dies, the lease expires and the trial goes back to the queue.
"""
from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from optimizer_svc.client import OptimizerClient, parameters
from saga.v1 import optimizer_pb2 as pb

from .results import TrialResult


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    out = {k: float(v) for k, v in metrics.items()}
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"metrics {bad} are not finite numbers: a NaN loss makes a trial infeasible "
                         "(trial.infeasible(...))")
    return out


class Trial:
    """Use as a context manager: an exception inside ``with trial:`` fails the trial (it is retried up to
    the study's ``budget.max_attempts``) and propagates; leaving without completing hands it back."""

    def __init__(self, client: OptimizerClient, trial: pb.Trial, lease: pb.Lease):
        self._client = client
        self._trial = trial
        self._lease = lease
        self.id = trial.id
        self.number = trial.number
        self.study_id = trial.study_id
        self.params: dict[str, Any] = parameters(trial)
        self.task: dict[str, Any] = json.loads(trial.task_json) if trial.task_json else {}
        self.stop_reason = ""
        self.finished = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        # The lease runs from now to its deadline (the optimizer's clock; a skew of seconds is harmless).
        lease_s = max(3.0, lease.deadline.seconds + lease.deadline.nanos / 1e9 - time.time())
        self._beat = threading.Thread(target=self._heartbeat, args=(lease_s / 3,), name=f"lease-{trial.id}",
                                      daemon=True)
        self._beat.start()

    def __repr__(self) -> str:
        return f"Trial({self.id!r}, params={self.params!r})"

    @property
    def max_epochs(self) -> int | None:
        """The study's ``training.epochs``: how many epochs a trial may train."""
        steps = self.task.get("steps") or [{}]
        return steps[0].get("max_epochs")

    @property
    def should_stop(self) -> bool:
        """True once a stopping rule (or a stopped study) ended this trial: stop training, then complete."""
        return bool(self.stop_reason)

    def report(self, epoch: int, metrics: dict[str, float], *, step: str = "train") -> bool:
        """Stores one epoch's metrics (0-based ``epoch``); True to go on training, False when a stopping
        rule says stop (``stop_reason`` says which)."""
        with self._lock:
            self._check_open()
            decision, reason = self._client.report_progress(self.id, self._lease.id, step, int(epoch),
                                                            _finite(metrics))
        if decision != "continue":
            self.stop_reason = reason or decision
        return decision == "continue"

    def complete(self, metrics: dict[str, float] | None = None,
                 artifacts: dict[str, str] | None = None) -> TrialResult:
        """Ends the trial as an observation: its value is the best objective over the reported epochs
        and ``metrics``. InvalidArgument if neither holds the objective metric."""
        return self._finish("SUCCEEDED", metrics=_finite(metrics or {}), artifacts=artifacts or {})

    def fail(self, error: str) -> TrialResult:
        """Ends this attempt as failed; the optimizer re-queues it until ``budget.max_attempts``."""
        return self._finish("FAILED", error=error)

    def infeasible(self, reason: str) -> TrialResult:
        """These parameters cannot train (a NaN loss, a model that does not fit): never retried."""
        return self._finish("INFEASIBLE", error=reason)

    def release(self) -> None:
        """Hands the trial back unrun (another ``ask`` gets it), without using an attempt."""
        self._finish("RELEASED", error="released by the Python API")

    def keras_callback(self, *, step: str = "train"):
        """A ``keras.callbacks.Callback`` that reports each epoch's logs and stops ``fit`` when a rule says
        so; a NaN in the logs marks the trial infeasible and stops ``fit``."""
        import keras

        trial = self

        class SagaReport(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                logs = {k: float(v) for k, v in (logs or {}).items()}
                if any(not math.isfinite(v) for v in logs.values()):
                    trial.infeasible(f"epoch {epoch}: non-finite metrics {logs}")
                    self.model.stop_training = True
                elif not trial.report(epoch, logs, step=step):
                    self.model.stop_training = True

        return SagaReport()

    def __enter__(self) -> "Trial":
        return self

    def __exit__(self, exc_type, exc: BaseException | None, tb: object) -> None:
        if self.finished:
            return
        if exc_type is None or not issubclass(exc_type, Exception):
            self.release()  # left without an outcome, or interrupted (Ctrl-C): someone else may run it
        else:
            self.fail(f"{exc_type.__name__}: {exc}")

    # -- internals
    def _check_open(self) -> None:
        if self.finished:
            raise RuntimeError(f"trial {self.id} is already finished")

    def _finish(self, outcome: str, **kw: Any) -> TrialResult:
        with self._lock:
            self._check_open()
            done = self._client.complete_trial(self.id, self._lease.id, outcome, **kw)
            self.finished = True
            self._done.set()
        return TrialResult.from_proto(done)

    def _heartbeat(self, every: float) -> None:
        while not self._done.wait(every):
            with self._lock:
                if self.finished:
                    return
                try:
                    decision, reason = self._client.heartbeat(self.id, self._lease.id)
                except Exception:  # the next report or completion raises it to the user's code
                    return
            if decision != "continue":
                self.stop_reason = reason or decision
