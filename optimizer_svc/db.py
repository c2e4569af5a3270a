"""SQLite persistence (WAL) of studies, phases, trials and measurements.

Observations are the state: everything the core knows lives in these tables, and the GP is refit
from them after a restart. Every write is one transaction, committed (WAL, ``synchronous=NORMAL``)
before the caller is answered, so a kill -9 at any moment loses nothing that was acknowledged.
:meth:`Database.sync` also puts what is committed on the disk (fsync of the WAL), so it survives a
power loss: the core calls it before acknowledging a new study, a stop or a completion, outside its
lock, so that a slow disk delays only those callers and concurrent syncs share one flush. Progress
reports and lease changes reach the disk with the next sync or checkpoint. Columns are read by name;
the schema is versioned (``schema.py``). Not thread-safe on its own: the core serialises access to
the connection with its lock (``sync`` does not use it). ``points``, which a proposal reads, is the
exception: it reads through a connection of its own (WAL readers see the last commit and do not
block the writer), so that reading thousands of trials never holds the core's lock.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .schema import migrate

# Decoded parameters of trials kept for ``Database.points``, at most this many in all (some MiB).
MAX_CACHED_POINTS = 50_000



@dataclass
class StudyRow:
    id: str
    seq: int
    name: str
    spec_json: str
    state: str
    message: str
    current_phase: int
    created: float
    updated: float


@dataclass
class PhaseRow:
    study_id: str
    idx: int
    name: str
    budget: int
    context_json: str
    done: int
    best_trial_id: str


@dataclass
class TrialRow:
    id: str
    study_id: str
    phase: int
    number: int
    state: str
    params_json: str
    task_json: str
    attempt: int
    lease_id: str = ""
    lease_deadline: float = 0.0
    last_lease_id: str = ""
    completion_key: str = ""
    worker_id: str = ""
    value: float | None = None
    stop_reason: str = ""
    stop_order: str = ""        # a STOP_TRIAL the optimizer has ordered, repeated on every report
    error: str = ""
    metrics_json: str = "{}"
    artifacts_json: str = "{}"
    created: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    releases: int = 0            # attempts handed back by shutting-down workers; they do not count
    lease_request: str = ""      # the LeaseTrial request id that got the current lease (retries get it again)
    expired_lease: str = ""      # the lease that expired last; its worker's late report may take it back

    @property
    def attempts_used(self) -> int:
        return self.attempt - self.releases

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)

    @property
    def metrics(self) -> dict[str, float]:
        return json.loads(self.metrics_json)

    @property
    def artifacts(self) -> dict[str, str]:
        return json.loads(self.artifacts_json)

    @property
    def task(self) -> dict[str, Any]:
        return json.loads(self.task_json)


class PointRow(NamedTuple):
    """A trial as a proposal sees it (``Database.points``); reads like a TrialRow."""

    state: str
    params: dict[str, Any]
    value: float | None


@dataclass
class MeasurementRow:
    trial_id: str
    attempt: int
    step: str
    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)
    time: float = 0.0


class Database:
    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self._reader_lock = threading.Lock()
        # (study, phase) -> (number of the last trial decoded, its parameters and those before it):
        # a trial's parameters never change once it exists, so each is decoded once.
        self._points: OrderedDict[tuple[str, int], tuple[int, list[dict[str, Any]]]] = OrderedDict()
        self._cached_points = 0
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.schema_found = migrate(self.conn, self.path)
        self.sync()
        # ``points``' own connection; in memory there is only one database, the writer's
        self._reader = self.conn if self.path == ":memory:" else sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30)

    def close(self) -> None:
        if self._reader is not self.conn:
            with self._reader_lock:
                self._reader.close()
        self.conn.close()

    def transaction(self) -> "_Tx":
        """One write transaction (committed on exit, rolled back on an exception)."""
        return _Tx(self.conn)

    def sync(self) -> None:
        """Makes every committed transaction survive a power loss. Thread-safe, and safe without
        the caller's lock: it flushes the WAL file through a descriptor of its own."""
        if self.path == ":memory:":
            return
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:
            return  # nothing written since the last checkpoint (which syncs the database)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- studies
    def insert_study(self, s: StudyRow) -> None:
        self._insert("studies", s)

    def update_study(self, study_id: str, **fields: Any) -> None:
        self._update("studies", "id = ?", (study_id,), fields)

    def study(self, study_id: str) -> StudyRow | None:
        row = self.conn.execute("SELECT * FROM studies WHERE id = ?", (study_id,)).fetchone()
        return _row(StudyRow, row) if row else None

    def studies(self, states: tuple[str, ...] | None = None) -> list[StudyRow]:
        sql, args = "SELECT * FROM studies", ()
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args = states
        return [_row(StudyRow, r) for r in self.conn.execute(sql + " ORDER BY seq DESC", args)]

    def next_study_seq(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM studies").fetchone()[0])

    # -- phases
    def insert_phase(self, p: PhaseRow) -> None:
        self._insert("phases", p)

    def update_phase(self, study_id: str, idx: int, **fields: Any) -> None:
        self._update("phases", "study_id = ? AND idx = ?", (study_id, idx), fields)

    def phases(self, study_id: str) -> list[PhaseRow]:
        return [_row(PhaseRow, r) for r in self.conn.execute(
            "SELECT * FROM phases WHERE study_id = ? ORDER BY idx", (study_id,))]

    # -- trials
    def insert_trial(self, t: TrialRow) -> None:
        self._insert("trials", t)

    def update_trial(self, trial_id: str, **fields: Any) -> None:
        self._update("trials", "id = ?", (trial_id,), fields)

    def trial(self, trial_id: str) -> TrialRow | None:
        row = self.conn.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        return _row(TrialRow, row) if row else None

    def trials(self, study_id: str, phase: int | None = None, states: tuple[str, ...] | None = None) -> list[TrialRow]:
        sql, args = "SELECT * FROM trials WHERE study_id = ?", [study_id]
        if phase is not None:
            sql += " AND phase = ?"
            args.append(phase)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        return [_row(TrialRow, r) for r in self.conn.execute(sql + " ORDER BY number", args)]

    def points(self, study_id: str, phase: int) -> list["PointRow"]:
        """What a proposal reads of each trial of a phase (state, parameters, value), in number order,
        as last committed. Thread-safe, and called without the core's lock: every lease asks this,
        of a phase that may hold thousands of trials. The parameters of trials read before come from
        memory (a trial's parameters never change), and new ones are decoded as one JSON array."""
        with self._reader_lock:
            key = (study_id, phase)
            last, known = self._points.pop(key, (-1, []))
            self._cached_points -= len(known)
            sql = ("SELECT number, state, value, CASE WHEN number > ? THEN params_json END FROM trials "
                   "WHERE study_id = ? AND phase = ? ORDER BY number")
            rows = self._reader.execute(sql, (last, study_id, phase)).fetchall()
            new = [r[3] for r in rows[len(known):]]
            if len(known) > len(rows) or any(r[3] is not None for r in rows[:len(known)]) or None in new:
                known = []  # not what was cached: decode them all
                rows = self._reader.execute(sql, (-1, study_id, phase)).fetchall()
                new = [r[3] for r in rows]
            params = known + json.loads(f"[{','.join(new)}]")
            if rows and self._reader is not self.conn:  # in memory, the rows may not be committed
                self._points[key] = (rows[-1][0], params)
                self._cached_points += len(params)
                while self._cached_points > MAX_CACHED_POINTS:
                    self._cached_points -= len(self._points.popitem(last=False)[1][1])
        return [PointRow(r[1], p, r[2]) for r, p in zip(rows, params)]

    def open_counts(self, study_id: str = "") -> dict[str, dict[str, int]]:
        """RUNNING and PENDING trials per study (of ``study_id`` alone if given), in one query."""
        out: dict[str, dict[str, int]] = {}
        for sid, state, n in self.conn.execute(
                "SELECT study_id, state, COUNT(*) FROM trials WHERE state IN ('RUNNING', 'PENDING') "
                "AND (? = '' OR study_id = ?) GROUP BY study_id, state", (study_id, study_id)):
            out.setdefault(sid, {})[state] = n
        return out

    def current_phase_fill(self, study_id: str = "") -> dict[str, tuple[int, int]]:
        """For every active study (``study_id`` alone if given): (trials created in its current phase,
        that phase's budget)."""
        return {r[0]: (r[1], r[2]) for r in self.conn.execute(
            "SELECT s.id, (SELECT COUNT(*) FROM trials t WHERE t.study_id = s.id AND t.phase = s.current_phase), "
            "p.budget FROM studies s JOIN phases p ON p.study_id = s.id AND p.idx = s.current_phase "
            "WHERE s.state = 'ACTIVE' AND (? = '' OR s.id = ?)", (study_id, study_id))}

    def count(self, study_id: str, phase: int | None = None, states: tuple[str, ...] | None = None) -> int:
        """How many trials match, without reading them (the lease path asks this on every poll)."""
        sql, args = "SELECT COUNT(*) FROM trials WHERE study_id = ?", [study_id]
        if phase is not None:
            sql += " AND phase = ?"
            args.append(phase)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        return int(self.conn.execute(sql, args).fetchone()[0])

    def recently_ended(self, study_id: str, states: tuple[str, ...], limit: int) -> list[TrialRow]:
        """The study's ``limit`` most recently ended trials among ``states``, most recent last."""
        rows = self.conn.execute(
            f"SELECT * FROM trials WHERE study_id = ? AND state IN ({','.join('?' * len(states))}) "
            "ORDER BY ended DESC, number DESC LIMIT ?", (study_id, *states, limit)).fetchall()
        return [_row(TrialRow, r) for r in reversed(rows)]

    def expired_leases(self, now: float) -> list[TrialRow]:
        return [_row(TrialRow, r) for r in self.conn.execute(
            "SELECT * FROM trials WHERE state = 'RUNNING' AND lease_deadline < ? ORDER BY created, number", (now,))]

    def trial_leased_for(self, request_id: str) -> TrialRow | None:
        """The running trial whose lease the LeaseTrial request ``request_id`` got."""
        row = self.conn.execute("SELECT * FROM trials WHERE state = 'RUNNING' AND lease_request = ?",
                                (request_id,)).fetchone()
        return _row(TrialRow, row) if row else None

    def running_trials(self) -> list[TrialRow]:
        return [_row(TrialRow, r) for r in self.conn.execute("SELECT * FROM trials WHERE state = 'RUNNING'")]

    def count_trials(self, study_id: str) -> dict[str, int]:
        return dict(self.conn.execute(
            "SELECT state, COUNT(*) FROM trials WHERE study_id = ? GROUP BY state", (study_id,)).fetchall())

    def count_all_trials(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())

    # -- measurements
    def insert_measurement(self, m: MeasurementRow) -> None:
        self.conn.execute(
            "INSERT INTO measurements (trial_id, attempt, step, epoch, metrics_json, time) VALUES (?,?,?,?,?,?)",
            (m.trial_id, m.attempt, m.step, m.epoch, json.dumps(m.metrics), m.time))

    def measurements(self, trial_id: str, attempt: int | None = None, step: str | None = None) -> list[MeasurementRow]:
        sql, args = "SELECT trial_id, attempt, step, epoch, metrics_json, time FROM measurements WHERE trial_id = ?", [trial_id]
        if attempt is not None:
            sql += " AND attempt = ?"
            args.append(attempt)
        if step is not None:
            sql += " AND step = ?"
            args.append(step)
        return [MeasurementRow(r["trial_id"], r["attempt"], r["step"], r["epoch"], json.loads(r["metrics_json"]),
                               r["time"]) for r in self.conn.execute(sql + " ORDER BY id", args)]

    # -- helpers
    def _insert(self, table: str, row: Any) -> None:
        d = row.__dict__
        self.conn.execute(f"INSERT INTO {table} ({','.join(d)}) VALUES ({','.join('?' * len(d))})", tuple(d.values()))

    def _update(self, table: str, where: str, args: tuple, fields: dict[str, Any]) -> None:
        if fields:
            sets = ",".join(f"{k} = ?" for k in fields)
            self.conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", (*fields.values(), *args))


def _row(cls: type, row: sqlite3.Row) -> Any:
    """A row as ``cls``, column by name; columns a newer release added and ``cls`` lacks are ignored."""
    keys = row.keys()
    return cls(**{f: row[f] for f in cls.__dataclass_fields__ if f in keys})


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception, also when COMMIT itself fails (a
    full disk): the connection is left without an open transaction, ready for the next request.
    Inside another transaction it is a SAVEPOINT: its own writes are undone on an exception and
    the outer transaction goes on (a batch of progress reports where one is refused)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.savepoint = ""

    def __enter__(self) -> None:
        if self.conn.in_transaction:
            self.savepoint = f"sp{id(self):x}"
            self.conn.execute(f"SAVEPOINT {self.savepoint}")
        else:
            self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.savepoint:
            if exc_type is not None and self.conn.in_transaction:
                self.conn.execute(f"ROLLBACK TO {self.savepoint}")
            if self.conn.in_transaction:
                self.conn.execute(f"RELEASE {self.savepoint}")
            return
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error is the one worth reporting



