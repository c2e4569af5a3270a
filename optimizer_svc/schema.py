"""The database schema as numbered migrations, applied in order and recorded in ``PRAGMA user_version``.

Version 1 is the schema of the first release, which did not record a version: a database with tables
and ``user_version`` 0 is a version-1 database. Each later version is one migration here; a migration
only adds (tables, columns with defaults, indexes), so rows written by an older release keep their
meaning. A database newer than this code is refused instead of being misread.

Changing the schema: append a migration, never edit an applied one; the migration test opens a
database written by the first release (tests/optimizer/fixtures/release-1.db).
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

_V1 = """
CREATE TABLE studies (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, name TEXT NOT NULL, spec_json TEXT NOT NULL,
    state TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', current_phase INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE phases (
    study_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, budget INTEGER NOT NULL,
    context_json TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, best_trial_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (study_id, idx));
CREATE TABLE trials (
    id TEXT PRIMARY KEY, study_id TEXT NOT NULL, phase INTEGER NOT NULL, number INTEGER NOT NULL,
    state TEXT NOT NULL, params_json TEXT NOT NULL, task_json TEXT NOT NULL, attempt INTEGER NOT NULL,
    lease_id TEXT NOT NULL DEFAULT '', lease_deadline REAL NOT NULL DEFAULT 0,
    last_lease_id TEXT NOT NULL DEFAULT '', completion_key TEXT NOT NULL DEFAULT '',
    worker_id TEXT NOT NULL DEFAULT '', value REAL, stop_reason TEXT NOT NULL DEFAULT '',
    stop_order TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
    metrics_json TEXT NOT NULL DEFAULT '{}', artifacts_json TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL, started REAL NOT NULL DEFAULT 0, ended REAL NOT NULL DEFAULT 0,
    releases INTEGER NOT NULL DEFAULT 0);
CREATE INDEX trials_by_study ON trials (study_id, phase, number);
CREATE INDEX trials_by_state ON trials (state);
CREATE TABLE measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT, trial_id TEXT NOT NULL, attempt INTEGER NOT NULL,
    step TEXT NOT NULL, epoch INTEGER NOT NULL, metrics_json TEXT NOT NULL, time REAL NOT NULL);
CREATE INDEX measurements_by_trial ON measurements (trial_id, attempt, step, epoch);
"""

# Version 2 (issue 12): idempotent leasing, recovery of leases that expired under a live worker, and
# indexes for the lease paths (expiry scan, request-id lookup) that hundreds of workers call.
_V2 = """
ALTER TABLE trials ADD COLUMN lease_request TEXT NOT NULL DEFAULT '';
ALTER TABLE trials ADD COLUMN expired_lease TEXT NOT NULL DEFAULT '';
CREATE INDEX trials_by_lease ON trials (state, lease_deadline);
CREATE INDEX trials_by_lease_request ON trials (lease_request);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2)  # MIGRATIONS[i] takes a database from version i to i + 1
VERSION = len(MIGRATIONS)


class SchemaError(RuntimeError):
    """The database cannot be used by this release (written by a newer one, or not ours)."""


def current_version(conn: sqlite3.Connection) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0 and conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'trials'").fetchone()[0]:
        return 1  # written by the first release, which did not set user_version
    return version


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Brings the database to :data:`VERSION`; returns the version it had. Each migration is one
    transaction; before changing an existing database its file is copied to ``<path>.v<N>.bak``."""
    found = current_version(conn)
    if found > VERSION:
        raise SchemaError(f"database {path} has schema version {found}, newer than this release knows "
                          f"({VERSION}); run a newer saga optimizer or point --db at another file")
    if found and found < VERSION and path != ":memory:":
        backup = Path(f"{path}.v{found}.bak")
        if not backup.exists():
            copy = sqlite3.connect(backup)
            try:
                conn.backup(copy)
            finally:
                copy.close()
            log.info("schema %d -> %d: copied %s to %s first", found, VERSION, path, backup)
    for version in range(found, VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if found:
            log.info("database %s migrated to schema version %d", path, version + 1)
    return found


def _statements(script: str) -> list[str]:
    """The statements of a migration, so they run inside one explicit transaction (executescript
    would commit first)."""
    return [s.strip() for s in script.split(";") if s.strip()]
