"""The optimizer's state machine: studies, phases, proposals, leases, progress and completions.

Transport-free: the gRPC servicer only converts messages and calls these methods. Thread-safe: one
lock guards the database; proposals (a GP fit, the slow part) run outside it, serialised per study,
so progress reports of other trials are never held up by a fit.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from . import stopping, strategies
from .db import Database, MeasurementRow, PhaseRow, StudyRow, TrialRow
from .errors import FailedPrecondition, InvalidArgument, NotFound
from .events import Event, EventBus
from .metrics import Metrics
from .proposer import Proposer, derive_seed, make_proposer
from .spec import StudySpec, parse_spec
from .observations import best_of, objective_value, observations
from .validation import MAX_NAME, MAX_TEXT, check_metrics, check_text
from .views import (ACTIVE, COMPLETED, FAILED, STOPPED, TERMINAL, Lease, StudyView, TrialView, merged_parameters,
                    study_view, trial_view)

log = logging.getLogger(__name__)

OUTCOMES = ("SUCCEEDED", "FAILED", "INFEASIBLE", "RELEASED")
MAX_LEASE_WAIT_S = 60.0
MAX_ARTIFACTS = 256


class OptimizerCore:
    def __init__(self, db_path: str, *, clock: Callable[[], float] = time.time, metrics: Metrics | None = None):
        self.db = Database(db_path)
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.events = EventBus()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._study_locks: dict[str, threading.Lock] = {}
        self._proposers: dict[tuple[str, int], Proposer] = {}
        self._specs: dict[str, StudySpec] = {}
        self.metrics.bind_trial_counts(self.trial_counts)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # ------------------------------------------------------------------ studies
    def create_study(self, spec_json: str | dict) -> StudyView:
        spec = parse_spec(spec_json)
        now = self.clock()
        study_id = "st-" + uuid.uuid4().hex[:12]
        with self._lock, self.db.transaction():
            self.db.insert_study(StudyRow(study_id, self.db.next_study_seq(), spec.name, spec.to_json(),
                                          ACTIVE, "", 0, now, now))
            self._start_phase(study_id, spec, 0, None)
        self._publish(study_id, "phase_started")
        log.info("created study %s (%s, strategy %s)", study_id, spec.name, spec.strategy)
        return self.get_study(study_id)

    def get_study(self, study_id: str) -> StudyView:
        with self._lock:
            return self._study_view(self._study_row(study_id))

    def list_studies(self) -> list[StudyView]:
        with self._lock:
            return [self._study_view(s) for s in self.db.studies()]

    def stop_study(self, study_id: str, reason: str = "") -> StudyView:
        check_text("reason", reason, MAX_TEXT)
        with self._lock:
            s = self._study_row(study_id)
            if s.state == ACTIVE:
                with self.db.transaction():
                    self.db.update_study(study_id, state=STOPPED, message=reason or "stopped by request",
                                         updated=self.clock())
                self._changed.notify_all()
        self._publish(study_id, "study_finished")
        return self.get_study(study_id)

    # ------------------------------------------------------------------ leasing
    def lease_trial(self, worker_id: str, study_id: str = "", timeout: float = 0.0) -> tuple[TrialView, Lease] | None:
        """A trial for ``worker_id`` (a re-queued one first, else a new proposal), waiting up to ``timeout``."""
        check_text("worker_id", worker_id, MAX_NAME)
        if not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout < 0:
            raise InvalidArgument("timeout_seconds: must be a number >= 0")
        if study_id:
            with self._lock:
                self._study_row(study_id)
        give_up = time.monotonic() + min(float(timeout), MAX_LEASE_WAIT_S)
        while True:
            got = self._try_lease(worker_id, study_id)
            if got is not None:
                return got
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                return None
            with self._changed:
                self._changed.wait(min(remaining, 1.0))

    def _try_lease(self, worker_id: str, study_id: str) -> tuple[TrialView, Lease] | None:
        with self._lock:
            self._expire_locked()
            studies = [self.db.study(study_id)] if study_id else self.db.studies((ACTIVE,))
            studies = [s for s in studies if s is not None and s.state == ACTIVE]
            # A custom model's trials go only to the client that asks for its study (saga.sdk).
            studies = [s for s in studies if study_id or not self._spec(s).custom]
            for s in sorted(studies, key=lambda s: s.seq):
                spec = self._spec(s)
                if self.db.count(s.id, states=("RUNNING",)) >= spec.budget.parallel_trials:
                    continue
                for t in self.db.trials(s.id, states=("PENDING",)):
                    return self._grant(t, spec, worker_id)
            candidates = [s.id for s in sorted(studies, key=lambda s: s.seq) if self._has_capacity(s)]
        for sid in candidates:
            got = self._propose_and_grant(sid, worker_id)
            if got is not None:
                return got
        return None

    def _has_capacity(self, s: StudyRow) -> bool:
        spec = self._spec(s)
        phase = self.db.phases(s.id)[s.current_phase]
        created = self.db.count(s.id, phase=phase.idx)
        busy = self.db.count(s.id, states=("RUNNING", "PENDING"))
        return s.state == ACTIVE and created < phase.budget and busy < spec.budget.parallel_trials

    def _propose_and_grant(self, study_id: str, worker_id: str) -> tuple[TrialView, Lease] | None:
        with self._study_lock(study_id):
            with self._lock:
                s = self.db.study(study_id)
                if s is None or not self._has_capacity(s):
                    return None
                spec = self._spec(s)
                phase = self.db.phases(study_id)[s.current_phase]
                ctx = strategies.PhaseContext.from_json(phase.context_json)
                params = strategies.phase_params(spec, phase.name, ctx)
                trials = self.db.trials(study_id, phase=phase.idx)
                observed = observations(trials, spec)
                pending = [t.params for t in trials if t.state in ("RUNNING", "PENDING")]
                number_in_phase = len(trials)
                proposer = self._proposer(study_id, phase.idx, spec, params)
            t0 = time.perf_counter()
            point = proposer.propose(number_in_phase, observed, pending)
            self.metrics.proposal_seconds.observe(time.perf_counter() - t0)
            if getattr(proposer, "last_fit_seconds", 0.0):
                self.metrics.gp_fit_seconds.observe(proposer.last_fit_seconds)
            with self._lock:
                s = self.db.study(study_id)
                if s is None or s.state != ACTIVE or s.current_phase != phase.idx:
                    return None
                now = self.clock()
                number = self.db.count(study_id)
                trial_id = f"{study_id}-{number:04d}"
                artifacts_uri = self._artifacts_uri(spec, study_id, trial_id)
                task = strategies.build_task(spec, study_id=study_id, trial_id=trial_id, attempt=1,
                                             phase_index=phase.idx, phase=phase.name, ctx=ctx,
                                             parameters=point, artifacts_uri=artifacts_uri)
                row = TrialRow(trial_id, study_id, phase.idx, number, "PENDING", json.dumps(point),
                               json.dumps(task), 1, created=now)
                with self.db.transaction():
                    self.db.insert_trial(row)
                    granted = self._grant(row, spec, worker_id, in_tx=True)
            self._publish(study_id, "trial_created", trial_id)
            return granted

    def _grant(self, t: TrialRow, spec: StudySpec, worker_id: str, in_tx: bool = False) -> tuple[TrialView, Lease]:
        now = self.clock()
        lease = Lease(uuid.uuid4().hex, now + spec.lease_seconds)
        task = t.task
        task["attempt"] = t.attempt
        fields = dict(state="RUNNING", lease_id=lease.id, lease_deadline=lease.deadline, worker_id=worker_id,
                      task_json=json.dumps(task), started=t.started or now, stop_order="", stop_reason="")
        if in_tx:
            self.db.update_trial(t.id, **fields)
        else:
            with self.db.transaction():
                self.db.update_trial(t.id, **fields)
        self._publish(t.study_id, "trial_leased", t.id)
        log.info("leased %s (attempt %d) to %s", t.id, t.attempt, worker_id)
        return self._trial_view(self.db.trial(t.id)), lease

    # ------------------------------------------------------------------ progress
    def report_progress(self, trial_id: str, lease_id: str, step: str, epoch: int,
                        metrics: dict[str, float]) -> tuple[str, str, float]:
        """Stores one epoch's metrics, extends the lease; returns (decision, reason, lease deadline)."""
        check_metrics(metrics)
        if metrics:
            check_text("step", step, 64, required=True)
            if not isinstance(epoch, int) or epoch < 0 or epoch > 1_000_000:
                raise InvalidArgument("epoch: must be an integer in [0, 1000000]")
        with self._lock:
            self._expire_locked()
            t = self._held_trial(trial_id, lease_id)
            s = self._study_row(t.study_id)
            spec = self._spec(s)
            now = self.clock()
            deadline = now + spec.lease_seconds
            verdict = stopping.Verdict(stopping.CONTINUE)
            update: dict[str, Any] = {"lease_deadline": deadline}
            with self.db.transaction():
                if metrics:
                    history = [m for m in self.db.measurements(t.id, t.attempt) if m.step == step]
                    if not any(m.epoch == epoch for m in history):  # a retried report is stored once
                        m = MeasurementRow(t.id, t.attempt, step, epoch, dict(metrics), now)
                        self.db.insert_measurement(m)
                        history.append(m)
                    history.sort(key=lambda m: m.epoch)
                    verdict = stopping.decide(spec.stopping, [m.metrics for m in history])
                if s.state != ACTIVE:
                    verdict = stopping.Verdict(stopping.STOP_TRIAL, f"study {s.state.lower()}: {s.message}")
                elif t.stop_order:
                    verdict = stopping.Verdict(stopping.STOP_TRIAL, t.stop_order)
                if verdict.decision == stopping.STOP_TRIAL:
                    update.update(stop_order=verdict.reason, stop_reason=verdict.reason)
                elif verdict.decision == stopping.STOP_STEP and step == t.task["steps"][-1]["name"]:
                    update["stop_reason"] = verdict.reason
                self.db.update_trial(t.id, **update)
        if metrics:
            self._publish(t.study_id, "progress", t.id)
        return verdict.decision, verdict.reason, deadline

    # ------------------------------------------------------------------ completion
    def complete_trial(self, trial_id: str, lease_id: str, outcome: str, metrics: dict[str, float],
                       artifacts: dict[str, str], error: str = "") -> TrialView:
        if outcome not in OUTCOMES:
            raise InvalidArgument(f"outcome: must be one of {list(OUTCOMES)}, got {outcome!r}")
        check_metrics(metrics)
        check_text("error", error, MAX_TEXT)
        if len(artifacts) > MAX_ARTIFACTS:
            raise InvalidArgument(f"artifacts: at most {MAX_ARTIFACTS} entries")
        for k, v in artifacts.items():
            check_text("artifacts key", k, MAX_NAME, required=True)
            check_text(f"artifacts[{k!r}]", v, MAX_TEXT, required=True)
        key = hashlib.sha256(json.dumps([outcome, metrics, artifacts, error], sort_keys=True).encode()).hexdigest()
        with self._lock:
            self._expire_locked()
            t = self._trial_row(trial_id)
            if t.completion_key == key and lease_id and lease_id == t.last_lease_id:
                return self._trial_view(t)  # the same completion again: already applied
            t = self._held_trial(trial_id, lease_id)
            s = self._study_row(t.study_id)
            spec = self._spec(s)
            now = self.clock()
            fields: dict[str, Any] = dict(lease_id="", lease_deadline=0.0, last_lease_id=lease_id, completion_key=key,
                                          metrics_json=json.dumps(metrics), artifacts_json=json.dumps(artifacts),
                                          error=error or t.error)  # keep why an earlier attempt failed
            if outcome == "SUCCEEDED":
                value = objective_value(self.db.measurements(t.id, t.attempt), metrics, spec)
                if value is None:
                    raise InvalidArgument(f"metrics: no value of the objective metric {spec.objective_metric!r} was "
                                          "reported in progress or in the completion")
                fields.update(state="STOPPED_EARLY" if t.stop_reason else "SUCCEEDED", value=value, ended=now)
            elif outcome == "INFEASIBLE":
                fields.update(state="INFEASIBLE", ended=now)
            elif outcome == "RELEASED":
                fields.update(state="PENDING", attempt=t.attempt + 1, releases=t.releases + 1, worker_id="")
            elif t.attempts_used < spec.budget.max_attempts:
                fields.update(state="PENDING", attempt=t.attempt + 1, worker_id="")
            else:
                fields.update(state="FAILED", ended=now)
            with self.db.transaction():
                self.db.update_trial(t.id, **fields)
                self._advance_locked(s, spec)
            self._changed.notify_all()
            view = self._trial_view(self.db.trial(t.id))
        self._publish(t.study_id, "trial_requeued" if view.state == "PENDING" else "trial_finished", t.id)
        return view

    # ------------------------------------------------------------------ leases
    def expire_leases(self) -> int:
        with self._lock:
            return self._expire_locked()

    def _expire_locked(self) -> int:
        now = self.clock()
        expired = self.db.expired_leases(now)
        for t in expired:
            s = self._study_row(t.study_id)
            spec = self._spec(s)
            self.metrics.lease_expiries.inc()
            msg = f"lease of worker {t.worker_id!r} expired on attempt {t.attempt}"
            with self.db.transaction():
                if t.attempts_used < spec.budget.max_attempts:
                    self.db.update_trial(t.id, state="PENDING", attempt=t.attempt + 1, lease_id="", lease_deadline=0.0,
                                         last_lease_id=t.lease_id, worker_id="", error=msg)
                else:
                    self.db.update_trial(t.id, state="FAILED", lease_id="", lease_deadline=0.0,
                                         last_lease_id=t.lease_id, error=msg, ended=now)
                    self._advance_locked(s, spec)
            log.warning("%s: %s", t.id, msg)
            self._publish(t.study_id, "trial_requeued", t.id)
        if expired:
            self._changed.notify_all()
        return len(expired)

    # ------------------------------------------------------------------ phases
    def _start_phase(self, study_id: str, spec: StudySpec, idx: int, prior: TrialRow | None) -> None:
        name = strategies.phase_names(spec)[idx]
        prior_info = None
        if prior is not None:
            prior_info = strategies.PriorTrial(prior.id, merged_parameters(self.db, prior), prior.artifacts, prior.metrics,
                                               prior.task.get("start_from"))
        ctx = strategies.phase_context(spec, name, prior_info)
        self.db.insert_phase(PhaseRow(study_id, idx, name, spec.budget.trials_for(name), ctx.to_json(), 0, ""))
        self.db.update_study(study_id, current_phase=idx, updated=self.clock())

    def _advance_locked(self, s: StudyRow, spec: StudySpec) -> None:
        """Ends the current phase once all its trials are finished; starts the next or ends the study."""
        s = self.db.study(s.id)
        phase = self.db.phases(s.id)[s.current_phase]
        trials = self.db.trials(s.id, phase=phase.idx)
        if phase.done or len(trials) < phase.budget or any(t.state not in TERMINAL for t in trials):
            return
        best = best_of(trials, spec)
        self.db.update_phase(s.id, phase.idx, done=1, best_trial_id=best.id if best else "")
        if s.state != ACTIVE:
            return
        names = strategies.phase_names(spec)
        if best is None:
            self.db.update_study(s.id, state=FAILED, updated=self.clock(),
                                 message=f"phase {phase.name!r} ended without a successful trial")
        elif phase.idx + 1 < len(names):
            self._start_phase(s.id, spec, phase.idx + 1, best)
            self._publish(s.id, "phase_started")
        else:
            self.db.update_study(s.id, state=COMPLETED, updated=self.clock(), message="")
        if self.db.study(s.id).state != ACTIVE:
            self._publish(s.id, "study_finished")

    # ------------------------------------------------------------------ reads
    def get_trial(self, trial_id: str) -> TrialView:
        with self._lock:
            return self._trial_view(self._trial_row(trial_id), with_measurements=True)

    def list_trials(self, study_id: str, phase: int | None = None,
                    with_measurements: bool = False) -> list[TrialView]:
        with self._lock:
            self._study_row(study_id)
            return [self._trial_view(t, with_measurements) for t in self.db.trials(study_id, phase=phase)]

    def best_trial(self, study_id: str, phase: int | None = None, with_measurements: bool = True) -> TrialView | None:
        with self._lock:
            s = self._study_row(study_id)
            best = best_of(self.db.trials(study_id, phase=phase), self._spec(s))
            return self._trial_view(best, with_measurements) if best else None

    def trial_counts(self) -> dict[str, int]:
        with self._lock:
            return self.db.count_all_trials()

    @contextmanager
    def subscribe(self, study_id: str) -> Iterator[Any]:
        with self._lock:
            self._study_row(study_id)
        q = self.events.subscribe(study_id)
        try:
            yield q
        finally:
            self.events.unsubscribe(study_id, q)

    # ------------------------------------------------------------------ helpers
    def _publish(self, study_id: str, kind: str, trial_id: str = "") -> None:
        self.events.publish(Event(study_id, kind, trial_id))

    def _study_lock(self, study_id: str) -> threading.Lock:
        with self._lock:
            return self._study_locks.setdefault(study_id, threading.Lock())

    def _study_row(self, study_id: str) -> StudyRow:
        check_text("study_id", study_id, MAX_NAME, required=True)
        s = self.db.study(study_id)
        if s is None:
            raise NotFound(f"study {study_id!r} not found")
        return s

    def _trial_row(self, trial_id: str) -> TrialRow:
        check_text("trial_id", trial_id, MAX_NAME, required=True)
        t = self.db.trial(trial_id)
        if t is None:
            raise NotFound(f"trial {trial_id!r} not found")
        return t

    def _held_trial(self, trial_id: str, lease_id: str) -> TrialRow:
        t = self._trial_row(trial_id)
        check_text("lease_id", lease_id, MAX_NAME, required=True)
        if t.state != "RUNNING" or t.lease_id != lease_id:
            raise FailedPrecondition(f"lease {lease_id!r} no longer holds trial {trial_id} "
                                     f"(trial is {t.state}, attempt {t.attempt}); drop this trial")
        return t

    def _spec(self, s: StudyRow) -> StudySpec:
        spec = self._specs.get(s.id)
        if spec is None:
            spec = self._specs[s.id] = parse_spec(s.spec_json)
        return spec

    def _proposer(self, study_id: str, phase: int, spec: StudySpec, params) -> Proposer:
        key = (study_id, phase)
        if key not in self._proposers:
            self._proposers[key] = make_proposer(params, seed=derive_seed(spec.seed, phase),
                                                 initial_points=spec.budget.initial_points,
                                                 random_only=strategies.uses_random_proposals(spec))
        return self._proposers[key]

    def _artifacts_uri(self, spec: StudySpec, study_id: str, trial_id: str) -> str:
        base = spec.raw.get("artifacts_uri") or ""
        key = f"studies/{study_id}/trials/{trial_id}"
        return f"{base.rstrip('/')}/{key}" if base else key

    def _study_view(self, s: StudyRow) -> StudyView:
        return study_view(self.db, self._spec(s), s)

    def _trial_view(self, t: TrialRow, with_measurements: bool = False) -> TrialView:
        return trial_view(self.db, t, with_measurements)
