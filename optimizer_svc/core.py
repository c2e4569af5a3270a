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
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple

from trial_contract import counts_as_failure, one_line
from trial_contract.task import TASK_ARTIFACTS
from trial_contract.uris import check_store_uri

from . import failures, lease_recovery, stopping, strategies
from .datasets import DatasetCheck
from .db import Database, MeasurementRow, PhaseRow, StudyRow, TrialRow
from .demand import Demand, demand_by_study
from .egress import check_offline
from .errors import FailedPrecondition, InvalidArgument, NotFound, OptimizerError
from .events import Event, EventBus
from .metrics import Metrics
from .projects import Projects, study_uris
from .proposals import Engine, Proposals
from .proposer import derive_seed
from .spec import StudySpec, parse_spec, parse_stored
from .observations import best_of, observations, score
from .validation import MAX_NAME, MAX_TEXT, check_metrics, check_text
from .views import (ACTIVE, COMPLETED, FAILED, STOPPED, TERMINAL, Lease, StudyView, TrialView, merged_parameters,
                    study_view, trial_view)

log = logging.getLogger(__name__)

OUTCOMES = ("SUCCEEDED", "FAILED", "INFEASIBLE", "RELEASED")
MAX_LEASE_WAIT_S = 60.0
MAX_ARTIFACTS = 256
# Steps whose epochs the core keeps in memory, for the stopping rules: those of running attempts
# (an attempt's are dropped when it ends); beyond this many, the least recently reported.
MAX_CACHED_HISTORIES = 4096


class Progress(NamedTuple):
    """One ReportProgress request (``OptimizerCore.report_progress_many``)."""

    trial_id: str
    lease_id: str
    step: str
    epoch: int
    metrics: dict[str, float]


class OptimizerCore:
    def __init__(self, db_path: str, *, clock: Callable[[], float] = time.time, metrics: Metrics | None = None,
                 datasets: DatasetCheck | None = None, offline: bool = False, projects: Projects | None = None,
                 proposals: Proposals | None = None):
        """``datasets``: checks and pins each new study's dataset (None: specs are checked alone).
        ``offline``: trainers cannot download (egress.check_offline). ``projects``: the projects a
        study may belong to and the URI prefixes each may use (None: one tenant, any URI).
        ``proposals``: where proposals are computed (None: in this process; see optimizer_svc.proposals)."""
        self.db = Database(db_path)
        self.projects = projects
        self.datasets = datasets
        self.offline = offline
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.events = EventBus()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._study_locks: dict[str, threading.Lock] = {}
        self._turned_away: set[str] = set()  # studies whose proposal lock a lease call found taken
        self.proposals = proposals or Proposals()
        self._specs: dict[str, StudySpec] = {}
        # The epochs of recently reported steps, as committed: (trial, attempt, step) -> measurements.
        # The core is the database's only writer, so these stay true; a miss reads the database.
        self._histories: OrderedDict[tuple[str, int, str], list[MeasurementRow]] = OrderedDict()
        self._listeners: list[Callable[[str], None]] = []
        self.change_seq = 0  # counts changes that can make a lease possible (see add_change_listener)
        self.metrics.bind_trial_counts(self.trial_counts)
        self.metrics.bind_demand(self.demand)
        with self._lock:
            lease_recovery.extend_after_restart(self.db, lambda sid: self._spec(self._study_row(sid)).lease_seconds,
                                                self.clock())

    def add_change_listener(self, listener: Callable[[str], None]) -> None:
        """``listener(study_id)`` is called, under the core's lock (so it must only hand over, not
        work), whenever a trial may have become leasable: a new study, a completion, an expiry, a
        release. Long-polls wait for it instead of polling."""
        with self._lock:
            self._listeners.append(listener)

    def close(self) -> None:
        self.proposals.close()
        with self._lock:
            self.db.close()

    # ------------------------------------------------------------------ studies
    def create_study(self, spec_json: str | dict) -> StudyView:
        spec = parse_spec(spec_json)
        if self.projects is not None:  # before anything reads the dataset
            self.projects.check(spec.project, study_uris(spec.raw))
        if self.offline and not spec.custom:
            check_offline(spec)
        if self.datasets is not None and not spec.custom:
            given = json.loads(spec_json) if isinstance(spec_json, str) else spec_json
            spec = self.datasets.pin(spec, given)
        now = self.clock()
        study_id = "st-" + uuid.uuid4().hex[:12]
        with self._lock, self.db.transaction():
            self.db.insert_study(StudyRow(study_id, self.db.next_study_seq(), spec.name, spec.to_json(),
                                          ACTIVE, "", 0, now, now))
            self._start_phase(study_id, spec, 0, None)
            self._notify(study_id)
        self.db.sync()  # on disk before it is acknowledged; outside the lock, so a slow disk holds up no one else
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
                self._notify(study_id)
        self.db.sync()
        self._publish(study_id, "study_finished")
        return self.get_study(study_id)

    # ------------------------------------------------------------------ leasing
    def lease_trial(self, worker_id: str, study_id: str = "", timeout: float = 0.0,
                    request_id: str = "", projects: frozenset[str] | None = None) -> tuple[TrialView, Lease] | None:
        """A trial for ``worker_id`` (a re-queued one first, else a new proposal), waiting up to ``timeout``;
        with ``projects``, only of studies of those projects (another project's study is NotFound).

        Idempotent per ``request_id``: a retry of a request whose answer was lost gets the trial and
        lease that request was granted, as long as that trial still runs under it."""
        check_text("worker_id", worker_id, MAX_NAME)
        check_text("request_id", request_id, MAX_NAME)
        if not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout < 0:
            raise InvalidArgument("timeout_seconds: must be a number >= 0")
        if study_id:
            with self._lock:
                row = self._study_row(study_id)  # NotFound for an unknown study
                if projects is not None and self._spec(row).project not in projects:
                    raise NotFound(f"study {study_id!r} not found")  # another tenant's: invisible
        if request_id:
            with self._lock:
                t = self.db.trial_leased_for(request_id)
                if t is not None:
                    log.info("leased %s again to %s (a retried request)", t.id, worker_id)
                    return self._trial_view(t), Lease(t.lease_id, t.lease_deadline)
        give_up = time.monotonic() + min(float(timeout), MAX_LEASE_WAIT_S)
        while True:
            got = self._try_lease(worker_id, study_id, request_id, projects)
            if got is not None:
                return got
            if study_id and not self.study_active(study_id):
                return None  # it has ended: nothing will come to wait for
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                return None
            with self._changed:
                self._changed.wait(min(remaining, 1.0))

    def study_active(self, study_id: str) -> bool:
        """Whether the study can still have trials to lease (False once it has ended, or if unknown)."""
        with self._lock:
            s = self.db.study(study_id)
            return s is not None and s.state == ACTIVE

    def _try_lease(self, worker_id: str, study_id: str, request_id: str,
                   projects: frozenset[str] | None = None) -> tuple[TrialView, Lease] | None:
        with self._lock:
            self._expire_locked()
            studies = [self.db.study(study_id)] if study_id else self.db.studies((ACTIVE,))
            studies = [s for s in studies if s is not None and s.state == ACTIVE]
            # A custom model's trials go only to the client that asks for its study (saga.sdk).
            studies = [s for s in studies if study_id or not self._spec(s).custom]
            if projects is not None:
                studies = [s for s in studies if self._spec(s).project in projects]
            studies.sort(key=lambda s: s.seq)
            open_trials = self.db.open_counts()  # one query for every study, however many there are
            for s in studies:
                spec = self._spec(s)
                counts = open_trials.get(s.id, {})
                if counts.get("PENDING") and counts.get("RUNNING", 0) < spec.budget.parallel_trials:
                    for t in self.db.trials(s.id, states=("PENDING",)):
                        return self._grant(t, spec, worker_id, request_id)
            fill = self.db.current_phase_fill()
            candidates = [s.id for s in studies if self._has_capacity(s, fill, open_trials)]
        for sid in candidates:
            got = self._propose_and_grant(sid, worker_id, request_id)
            if got is not None:
                return got
        return None

    def _has_capacity(self, s: StudyRow, fill: dict[str, tuple[int, int]],
                      open_trials: dict[str, dict[str, int]]) -> bool:
        """Whether ``s`` may get a new trial: active, its current phase not full, fewer open trials
        than ``parallel_trials`` (``fill`` and ``open_trials``: the Database queries of those names)."""
        if s.id not in fill:
            return False  # not active
        created, budget = fill[s.id]
        return created < budget and sum(open_trials.get(s.id, {}).values()) < self._spec(s).budget.parallel_trials

    def _propose_and_grant(self, study_id: str, worker_id: str, request_id: str) -> tuple[TrialView, Lease] | None:
        with self._proposal_turn(study_id) as turn:
            if not turn:
                return None  # a proposal for this study is under way; its end wakes the waiters
            with self._lock:
                s = self.db.study(study_id)
                if s is None or not self._has_capacity(s, self.db.current_phase_fill(study_id),
                                                       self.db.open_counts(study_id)):
                    return None
                spec = self._spec(s)
                phase = self.db.phases(study_id)[s.current_phase]
            ctx = strategies.PhaseContext.from_json(phase.context_json)
            params = strategies.phase_params(spec, phase.name, ctx)
            # Outside the core's lock, from here to the grant: reading a phase of thousands of trials,
            # and a GP fit (seconds; the first one imports its engine). Only this call adds trials to
            # the study while it holds the study's proposal turn, so the count is stable.
            trials = self.db.points(study_id, phase.idx)
            observed = observations(trials, spec)
            pending = [t.params for t in trials if t.state in ("RUNNING", "PENDING")]
            number_in_phase = len(trials)
            engine = Engine(tuple(params), derive_seed(spec.seed, phase.idx), spec.budget.initial_points,
                            strategies.uses_random_proposals(spec), spec.budget.algorithm)
            t0 = time.perf_counter()
            proposal = self.proposals.propose((study_id, phase.idx), engine, number_in_phase, observed, pending)
            self.metrics.proposal_seconds.observe(time.perf_counter() - t0)
            if proposal.failure:
                self.metrics.proposal_fallbacks.inc()  # logged where it failed
            if proposal.fit_seconds:
                self.metrics.gp_fit_seconds.observe(proposal.fit_seconds)
            point = proposal.point
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
                    granted = self._grant(row, spec, worker_id, request_id, in_tx=True)
            self._publish(study_id, "trial_created", trial_id)
            return granted

    def _grant(self, t: TrialRow, spec: StudySpec, worker_id: str, request_id: str = "",
               in_tx: bool = False) -> tuple[TrialView, Lease]:
        now = self.clock()
        lease = Lease(uuid.uuid4().hex, now + spec.lease_seconds)
        task = t.task
        task["attempt"] = t.attempt
        # Each attempt writes under its own prefix: a stale attempt can never overwrite the files of
        # the attempt that completes, whose artifacts (from CompleteTrial) are the trial's.
        task["artifacts_uri"] = f"{self._artifacts_uri(spec, t.study_id, t.id)}/attempt-{t.attempt}"
        fields = dict(state="RUNNING", lease_id=lease.id, lease_deadline=lease.deadline, worker_id=worker_id,
                      task_json=json.dumps(task), started=t.started or now, stop_order="", stop_reason="",
                      lease_request=request_id, expired_lease="")
        if in_tx:
            self.db.update_trial(t.id, **fields)
        else:
            with self.db.transaction():
                self.db.update_trial(t.id, **fields)
        self._publish(t.study_id, "trial_leased", t.id)
        log.info("leased %s (attempt %d) to %s", t.id, t.attempt, worker_id)
        return self._trial_view(self.db.trial(t.id)), lease

    @contextmanager
    def uncontended(self) -> Iterator[bool]:
        """True, holding the core's lock, when no other call holds it now; False at once otherwise.
        Lets a caller that must not wait (an event loop) run a short call in place when it is free."""
        got = self._lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._lock.release()

    # ------------------------------------------------------------------ progress
    def report_progress(self, trial_id: str, lease_id: str, step: str, epoch: int,
                        metrics: dict[str, float]) -> tuple[str, str, float]:
        """Stores one epoch's metrics, extends the lease; returns (decision, reason, lease deadline)."""
        out = self.report_progress_many([Progress(trial_id, lease_id, step, epoch, metrics)])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def report_progress_many(self, reports: list[Progress]) -> list[tuple[str, str, float] | OptimizerError]:
        """Several reports in one transaction (one commit, one turn of the lock): what a server does
        with the heartbeats that arrive while the core is busy. Each report gets its own answer, or
        the error that refuses it alone (its writes undone; the others are kept). A failure of the
        database itself refuses the whole batch (raised): nothing of it is stored."""
        out: list[tuple[str, str, float] | OptimizerError] = []
        for r in reports:
            try:
                check_metrics(r.metrics)
                if r.metrics:
                    check_text("step", r.step, 64, required=True)
                    if not isinstance(r.epoch, int) or r.epoch < 0 or r.epoch > 1_000_000:
                        raise InvalidArgument("epoch: must be an integer in [0, 1000000]")
                out.append(None)  # type: ignore[arg-type]
            except OptimizerError as e:
                out.append(e)
        histories: dict[tuple[str, int, str], list[MeasurementRow]] = {}
        progressed: list[tuple[str, str]] = []  # (study, trial) of each report that stored metrics
        with self._lock:
            self._expire_locked()
            with self.db.transaction():
                for i, r in enumerate(reports):
                    if out[i] is not None:
                        continue
                    try:
                        with self.db.transaction():  # a savepoint: a refused report leaves nothing
                            study_id, out[i] = self._report_locked(r, histories)
                        if r.metrics:
                            progressed.append((study_id, r.trial_id))
                    except OptimizerError as e:
                        out[i] = e
            # committed: what the next report of each step reads instead of the database
            for key, history in histories.items():
                self._histories[key] = history
                self._histories.move_to_end(key)
            while len(self._histories) > MAX_CACHED_HISTORIES:
                self._histories.popitem(last=False)
        for study_id, trial_id in progressed:
            self._publish(study_id, "progress", trial_id)
        return out

    def _forget_histories(self, t: TrialRow) -> None:
        """Drops the cached epochs of an attempt that ended (they stay in the database): kept, they
        would only grow the heap that every garbage collection walks."""
        for step in t.task["steps"]:
            self._histories.pop((t.id, t.attempt, step["name"]), None)

    def _report_locked(self, r: Progress, histories: dict[tuple[str, int, str], list[MeasurementRow]]
                       ) -> tuple[str, tuple[str, str, float]]:
        """One report, in the caller's transaction: (its study, its answer). ``histories``: the
        steps' epochs as this batch left them, for a later report of the same step in it."""
        t = self._held_trial(r.trial_id, r.lease_id)
        s = self._study_row(t.study_id)
        spec = self._spec(s)
        now = self.clock()
        deadline = now + spec.lease_seconds
        verdict = stopping.Verdict(stopping.CONTINUE)
        update: dict[str, Any] = {"lease_deadline": deadline}
        key = (t.id, t.attempt, r.step)
        if r.metrics:
            history = histories.get(key) or self._histories.get(key)
            history = list(history) if history is not None else self.db.measurements(*key)
            if not any(m.epoch == r.epoch for m in history):  # a retried report is stored once
                m = MeasurementRow(t.id, t.attempt, r.step, r.epoch, dict(r.metrics), now)
                self.db.insert_measurement(m)
                history.append(m)
            history.sort(key=lambda m: m.epoch)
            verdict = stopping.decide(spec.stopping, [m.metrics for m in history])
            histories[key] = history
        if s.state != ACTIVE:
            verdict = stopping.Verdict(stopping.STOP_TRIAL, f"study {s.state.lower()}: {s.message}")
        elif t.stop_order:
            verdict = stopping.Verdict(stopping.STOP_TRIAL, t.stop_order)
        if verdict.decision == stopping.STOP_TRIAL:
            update.update(stop_order=verdict.reason, stop_reason=verdict.reason)
        elif verdict.decision == stopping.STOP_STEP and r.step == t.task["steps"][-1]["name"]:
            update["stop_reason"] = verdict.reason
        self.db.update_trial(t.id, **update)
        return t.study_id, (verdict.decision, verdict.reason, deadline)

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
            if k in TASK_ARTIFACTS:  # later tasks and the export read these: store URIs only
                try:
                    check_store_uri(v, f"artifacts[{k!r}]")
                except ValueError as e:
                    raise InvalidArgument(str(e)) from None
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
                                          # one line, no traceback; keep why an earlier attempt failed
                                          error=one_line(error) or t.error)
            if outcome == "SUCCEEDED":
                value, scored = score(t.task, self.db.measurements(t.id, t.attempt), metrics, spec)
                if value is None:
                    raise InvalidArgument(f"metrics: no value of the objective metric {spec.objective_metric!r} was "
                                          "reported in progress or in the completion")
                fields.update(state="STOPPED_EARLY" if t.stop_reason else "SUCCEEDED", value=value, ended=now,
                              metrics_json=json.dumps(scored))
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
                then = self._advance_locked(s, spec, failed=counts_as_failure(fields["state"], fields["error"]))
            self._forget_histories(t)
            self._notify(t.study_id)
            view = self._trial_view(self.db.trial(t.id))
        self.db.sync()  # an observation is on disk before it is acknowledged
        # watchers hear of the trial before what it caused (the next phase, the end of the study)
        self._publish(t.study_id, "trial_requeued" if view.state == "PENDING" else "trial_finished", t.id)
        for kind in then:
            self._publish(t.study_id, kind)
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
            then: list[str] = []
            requeued = t.attempts_used < spec.budget.max_attempts
            with self.db.transaction():
                if requeued:
                    # expired_lease: that worker's late report may still take the trial back (lease_recovery)
                    self.db.update_trial(t.id, state="PENDING", attempt=t.attempt + 1, lease_id="", lease_deadline=0.0,
                                         last_lease_id=t.lease_id, expired_lease=t.lease_id, error=msg)
                else:
                    self.db.update_trial(t.id, state="FAILED", lease_id="", lease_deadline=0.0,
                                         last_lease_id=t.lease_id, error=msg, ended=now)
                    then = self._advance_locked(s, spec)
            self._forget_histories(t)
            log.warning("%s: %s", t.id, msg)
            self._publish(t.study_id, "trial_requeued" if requeued else "trial_finished", t.id)
            for kind in then:
                self._publish(t.study_id, kind)
            self._notify(t.study_id)
        return len(expired)

    def release_grant(self, trial_id: str, lease_id: str) -> bool:
        """Puts back a trial whose grant never reached its worker (the LeaseTrial caller was gone by
        the time it was granted): PENDING again, the attempt not used. False if the lease has been
        used meanwhile (a report arrived) or no longer holds the trial."""
        with self._lock:
            t = self.db.trial(trial_id)
            if t is None or t.state != "RUNNING" or t.lease_id != lease_id or self.db.measurements(t.id, t.attempt):
                return False
            with self.db.transaction():
                self.db.update_trial(t.id, state="PENDING", lease_id="", lease_deadline=0.0, worker_id="",
                                     lease_request="")
            self.metrics.grants_released.inc()
            log.warning("%s: its LeaseTrial caller %r gave up before the answer; back in the queue", t.id, t.worker_id)
            self._notify(t.study_id)
        self._publish(t.study_id, "trial_requeued", t.id)
        return True

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

    def _advance_locked(self, s: StudyRow, spec: StudySpec, failed: bool = True) -> list[str]:
        """Ends the current phase once all its trials are finished; starts the next or ends the study.
        ``failed``: whether the trial that ended counts as a failure (only then can a streak of
        failures have reached its limit). Returns the study events this caused, for the caller to
        publish after the trial's own."""
        s = self.db.study(s.id)
        if s.state == ACTIVE and failed and self._stop_for_failures(s, spec):
            return ["study_finished"]
        phase = self.db.phases(s.id)[s.current_phase]
        # counted, not read: this runs on every completion, and a phase may hold thousands of trials
        total = self.db.count(s.id, phase=phase.idx)
        if phase.done or total < phase.budget or self.db.count(s.id, phase=phase.idx, states=TERMINAL) < total:
            return []
        trials = self.db.trials(s.id, phase=phase.idx)
        best = best_of(trials, spec)
        self.db.update_phase(s.id, phase.idx, done=1, best_trial_id=best.id if best else "")
        if s.state != ACTIVE:
            return []
        then = []
        names = strategies.phase_names(spec)
        if best is None:
            reason = failures.last_reason(trials)
            self.db.update_study(s.id, state=FAILED, updated=self.clock(),
                                 message=f"phase {phase.name!r} ended without a successful trial"
                                         + (f"; last failure: {reason}" if reason else ""))
        elif phase.idx + 1 < len(names):
            self._start_phase(s.id, spec, phase.idx + 1, best)
            then.append("phase_started")
        else:
            self.db.update_study(s.id, state=COMPLETED, updated=self.clock(), message="")
        if self.db.study(s.id).state != ACTIVE:
            then.append("study_finished")
        return then

    def _stop_for_failures(self, s: StudyRow, spec: StudySpec) -> bool:
        """Ends the study when its last ``budget.max_failed_trials`` trials all failed (optimizer_svc.failures)."""
        limit = spec.budget.max_failed_trials
        if limit <= 0:
            return False
        message = failures.stop_message(self.db.recently_ended(s.id, TERMINAL, limit), limit)
        if not message:
            return False
        self.db.update_study(s.id, state=FAILED, updated=self.clock(), message=message)
        log.warning("study %s: %s", s.id, message)
        return True

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

    def demand(self) -> dict[str, Demand]:
        """Trials each active study could start now (read-only; see optimizer_svc.demand)."""
        with self._lock:
            return demand_by_study(self.db, self._spec)

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
    def _notify(self, study_id: str) -> None:
        """Wakes lease waiters (in-process and long-polls); called with the lock held."""
        self.change_seq += 1
        self._changed.notify_all()
        for listener in self._listeners:
            listener(study_id)

    def _publish(self, study_id: str, kind: str, trial_id: str = "") -> None:
        self.events.publish(Event(study_id, kind, trial_id))

    def _study_lock(self, study_id: str) -> threading.Lock:
        with self._lock:
            return self._study_locks.setdefault(study_id, threading.Lock())

    @contextmanager
    def _proposal_turn(self, study_id: str) -> Iterator[bool]:
        """Proposals of one study run one at a time. A call that finds one under way gets False at
        once instead of holding its thread through a GP fit (seconds on a busy node); the call
        that proposes notifies the waiters when it is done."""
        lock = self._study_lock(study_id)
        while not lock.acquire(blocking=False):
            with self._lock:
                self._turned_away.add(study_id)
                taken = lock.locked()  # if so, its holder sees the mark after releasing
            if taken:
                yield False
                return
        try:
            yield True
        finally:
            lock.release()
            with self._lock:
                if study_id in self._turned_away:
                    self._turned_away.discard(study_id)
                    self._notify(study_id)

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
        if t.state == "PENDING" and t.expired_lease == lease_id:
            spec = self._spec(self._study_row(t.study_id))
            t = lease_recovery.recover(self.db, t, lease_id, self.clock(), spec.lease_seconds) or t
            if t.state == "RUNNING":
                self.metrics.lease_recoveries.inc()
                self._publish(t.study_id, "trial_leased", t.id)
        if t.state != "RUNNING" or t.lease_id != lease_id:
            raise FailedPrecondition(f"lease {lease_id!r} no longer holds trial {trial_id} "
                                     f"(trial is {t.state}, attempt {t.attempt}); drop this trial")
        return t

    def _spec(self, s: StudyRow) -> StudySpec:
        spec = self._specs.get(s.id)
        if spec is None:
            spec = self._specs[s.id] = parse_stored(s.spec_json)
        return spec

    def _artifacts_uri(self, spec: StudySpec, study_id: str, trial_id: str) -> str:
        base = spec.raw.get("artifacts_uri") or ""
        key = f"studies/{study_id}/trials/{trial_id}"
        return f"{base.rstrip('/')}/{key}" if base else key

    def _study_view(self, s: StudyRow) -> StudyView:
        return study_view(self.db, self._spec(s), s)

    def _trial_view(self, t: TrialRow, with_measurements: bool = False) -> TrialView:
        return trial_view(self.db, t, with_measurements)
