"""The trainer worker loop: lease a trial, run it, complete it, lease the next.

Stateless: everything a trial needs comes with its lease (the task) or from the object store, so
any number of workers on any number of machines can serve one optimizer. The training code knows
nothing of leases; :class:`LeaseReporter` turns its per-epoch reports into ReportProgress calls.

Outages of the optimizer cost time, never the worker: an idle worker waits for it forever (the
client backs off and logs once a minute); a busy one keeps training, waits at the next epoch's
report or at the completion until the optimizer answers, and goes on if its lease still holds (or
was recovered: optimizer_svc/lease_recovery.py). Only SIGTERM or a refused lease ends a trial early.
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from datastore import open_store
from optimizer_svc.client import OptimizerClient
from optimizer_svc.errors import FailedPrecondition, InvalidArgument, NotFound, OptimizerError, Unavailable
from saga.v1.optimizer_pb2 import STUDY_ACTIVE

from .completion import complete
from .errors import InfeasibleTrial, InvalidTask
from .progress import Decision
from .runner import run_task
from .task import parse_task

log = logging.getLogger(__name__)
# After an answer the worker cannot use (an optimizer bug, INTERNAL), wait this long before asking again.
ERROR_BACKOFF_S = 10.0


class ShutdownRequested(Exception):
    """The worker was asked to stop (SIGTERM) while a trial was running."""


class LeaseLost(Exception):
    """The optimizer no longer counts this worker as the trial's holder."""


class LeaseReporter:
    """A Reporter over the optimizer's ReportProgress.

    A background thread heartbeats for the whole trial (dataset sync and model building included,
    which no Keras callback sees); the training callbacks only check, every batch, whether the
    worker is shutting down or the lease was lost, so both act within one batch.
    """

    def __init__(self, client: OptimizerClient, trial_id: str, lease_id: str, stop: threading.Event,
                 heartbeat_every_s: float):
        self.client, self.trial_id, self.lease_id, self.stop = client, trial_id, lease_id, stop
        self.heartbeat_every_s = heartbeat_every_s
        self.lost: str = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)

    def __enter__(self) -> "LeaseReporter":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        while not self._done.wait(self.heartbeat_every_s):
            try:
                # Retried until the next beat is due; an outage only delays the beats.
                self.client.heartbeat(self.trial_id, self.lease_id, retry_for=self.heartbeat_every_s)
            except (FailedPrecondition, NotFound) as e:
                self.lost = str(e)
                return
            except Unavailable:
                pass  # the optimizer is away (the client logs it); keep training, keep beating
            except Exception as e:  # keep beating until the optimizer says no
                log.warning("%s: heartbeat failed: %s", self.trial_id, e)

    def report(self, step: str, epoch: int, metrics: dict[str, float]) -> Decision:
        self.heartbeat()
        try:
            # Waits out an optimizer outage: its decision is needed before the next epoch.
            decision, reason = self.client.report_progress(self.trial_id, self.lease_id, step, epoch, metrics,
                                                           retry_for=None)
        except (FailedPrecondition, NotFound) as e:
            raise LeaseLost(str(e)) from None
        except Unavailable:
            self.heartbeat()  # only SIGTERM (abort) ends the retries: hand the trial back
            raise
        if reason:
            log.info("%s: optimizer says %s (%s)", self.trial_id, decision, reason)
        return Decision(decision)

    def heartbeat(self) -> None:
        """Called by the training callback every batch: only checks, the thread does the talking."""
        if self.stop.is_set():
            raise ShutdownRequested("worker shutting down (SIGTERM); trial handed back")
        if self.lost:
            raise LeaseLost(self.lost)


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.trials = Counter("saga_trainer_trials", "Trials finished by this worker, by outcome", ["outcome"],
                              registry=r)
        self.trial_seconds = Histogram("saga_trainer_trial_seconds", "Wall time of one trial",
                                       buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400), registry=r)
        self.busy = Gauge("saga_trainer_busy", "1 while a trial runs", registry=r)


class Worker:
    def __init__(self, client: OptimizerClient, store_uri: str, *, worker_id: str, cache_dir: Path, work_dir: Path,
                 study_id: str = "", lease_wait: float = 10.0, metrics: WorkerMetrics | None = None,
                 stop: threading.Event | None = None):
        self.client, self.store_uri, self.worker_id = client, store_uri.rstrip("/"), worker_id
        self.cache_dir, self.work_dir, self.study_id, self.lease_wait = cache_dir, work_dir, study_id, lease_wait
        self.metrics = metrics or WorkerMetrics()
        self.stop = stop or threading.Event()

    def run(self, max_trials: int | None = None, exit_when_idle: bool = False, exit_when_done: bool = False) -> int:
        """Runs trials until stopped (or ``max_trials``); returns how many it ran.

        ``exit_when_idle``: return when no trial comes within one lease wait. ``exit_when_done``:
        return once the worker's study (or, without one, every study) is no longer active, so that
        no trial of it can come any more (a Kubernetes Job's worker then completes)."""
        done = 0
        while not self.stop.is_set() and (max_trials is None or done < max_trials):
            asked = time.monotonic()
            got = self._lease()
            if got is None:
                if (exit_when_idle or (exit_when_done and self.no_more_work())) and not self.stop.is_set():
                    break
                # The optimizer answers at once for a study that has ended: never ask again faster
                # than once per lease wait (an idle trainer is one call per --lease-wait, not a loop).
                self.stop.wait(max(0.0, self.lease_wait - (time.monotonic() - asked)))
                continue
            if self.stop.is_set():  # the lease came back after SIGTERM: hand it straight back
                complete(self.client, got[0].id, got[1].id, "RELEASED", {}, {}, "worker shutting down (SIGTERM)")
                break
            self.run_one(*got)
            done += 1
        return done

    def no_more_work(self) -> bool:
        """True when the worker's study (without one: every study) is no longer active. An optimizer
        that does not answer is no answer: False, and the next lease waits the outage out."""
        try:
            studies = [self.client.get_study(self.study_id)] if self.study_id else self.client.list_studies()
        except (InvalidArgument, NotFound):
            raise
        except OptimizerError as e:
            log.warning("is the study done? no answer (%s); asking again after the next lease", e)
            return False
        return not any(s.state == STUDY_ACTIVE for s in studies)

    def run_one(self, trial, lease) -> str:
        """Runs one leased trial and completes it; returns the outcome sent (or 'lost')."""
        started = time.monotonic()
        self.metrics.busy.set(1)
        log.info("trial %s (attempt %d): %s", trial.id, trial.attempt, _describe(trial))
        try:
            outcome, metrics, artifacts, error = self._execute(trial, lease)
        finally:
            self.metrics.busy.set(0)
        if outcome == "lost":
            self.metrics.trials.labels("lost").inc()
            return outcome
        outcome = complete(self.client, trial.id, lease.id, outcome, metrics, artifacts, error)
        self.metrics.trials.labels(outcome.lower()).inc()
        self.metrics.trial_seconds.observe(time.monotonic() - started)
        log.info("trial %s: %s in %.1fs%s", trial.id, outcome, time.monotonic() - started,
                 f" ({error.splitlines()[0]})" if error else "")
        return outcome

    def _lease(self):
        """The next trial, or None (none came within --lease-wait). Waits out optimizer outages;
        raises only for a configuration the optimizer refuses (an unknown --study)."""
        try:
            return self.client.lease_trial(self.worker_id, study_id=self.study_id, wait=self.lease_wait,
                                           retry_for=None)
        except (InvalidArgument, NotFound):
            raise
        except Unavailable:
            return None  # aborted by SIGTERM
        except OptimizerError as e:  # not the worker's to fix; the optimizer may recover
            log.error("lease: %s; asking again in %.0fs", e, ERROR_BACKOFF_S)
            self.stop.wait(ERROR_BACKOFF_S)
            return None

    def _execute(self, trial, lease) -> tuple[str, dict[str, float], dict[str, str], str]:
        try:
            raw = json.loads(trial.task_json)
            raw["artifacts_uri"] = self._resolve(raw.get("artifacts_uri", f"trials/{trial.id}"))
            task = parse_task(raw)
        except (InvalidTask, ValueError) as e:
            return "INFEASIBLE", {}, {}, f"invalid task: {e}"
        work = self.work_dir / trial.id / f"attempt-{trial.attempt}"
        try:
            with _removed_after(work), LeaseReporter(self.client, trial.id, lease.id, self.stop,
                                                     heartbeat_every_s=_heartbeat_interval(lease)) as reporter:
                result = run_task(task, open_store, reporter, self.cache_dir, work, heartbeat_every_s=0.0)
        except LeaseLost as e:
            log.warning("trial %s: lease lost (%s); dropping it", trial.id, e)
            return "lost", {}, {}, ""
        except ShutdownRequested as e:
            return "RELEASED", {}, {}, str(e)
        except InfeasibleTrial as e:
            return "INFEASIBLE", {}, {}, str(e)
        except (InvalidTask, ValueError) as e:  # a task that cannot run as given (bad weights, data)
            return "INFEASIBLE", {}, {}, f"{type(e).__name__}: {e}"
        except Exception as e:  # anything else may pass on another attempt; the traceback stays in this log
            log.exception("trial %s failed", trial.id)
            return "FAILED", {}, {}, f"{type(e).__name__}: {e}"
        metrics = {k: float(v) for k, v in result.metrics.items()}
        if result.objective_value is not None:
            metrics.setdefault(task.objective.metric, float(result.objective_value))
        return "SUCCEEDED", metrics, dict(result.artifacts), ""

    def _resolve(self, uri: str) -> str:
        """Artifact locations relative to the study are put under this worker's store."""
        if "://" in uri or uri.startswith("/"):
            return uri
        return f"{self.store_uri}/{uri}"


@contextmanager
def _removed_after(work: Path) -> Iterator[None]:
    """Removes an attempt's work directory when the attempt ends, however it ends: its artifacts are
    in the store by then, and a long-lived worker would otherwise fill its disk."""
    try:
        yield
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:
            work.parent.rmdir()  # the trial's directory, unless another attempt still works there
        except OSError:
            pass


def _heartbeat_interval(lease) -> float:
    """A quarter of the lease, so three heartbeats can be lost before the lease expires."""
    remaining = lease.deadline.ToSeconds() - time.time() if lease.deadline.seconds else 60.0
    return max(1.0, min(60.0, remaining / 4))


def _describe(trial) -> str:
    from optimizer_svc.client import parameters
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(parameters(trial).items()))
