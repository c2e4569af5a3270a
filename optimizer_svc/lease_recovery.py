"""Leases that survive trouble that is not the worker's fault.

A busy node can delay a live worker's heartbeats past its lease; the optimizer then re-queues the
trial. If that worker's report arrives before any other attempt has started, the attempt is still
the only one, so its lease is given back (``recover``) instead of throwing its work away. And an
optimizer that was down could not hear heartbeats at all: after a restart every running trial gets
a full lease to reconnect (``extend_after_restart``).
"""
from __future__ import annotations

import logging
from typing import Callable

from .db import Database, TrialRow

log = logging.getLogger(__name__)


def recover(db: Database, t: TrialRow, lease_id: str, now: float, lease_seconds: float) -> TrialRow | None:
    """Gives ``lease_id`` back to its worker if it is the lease that expired on ``t`` and the trial
    has waited in the queue since (no other attempt started); returns the trial, or None."""
    if t.state != "PENDING" or not lease_id or t.expired_lease != lease_id:
        return None
    with db.transaction():
        db.update_trial(t.id, state="RUNNING", attempt=t.attempt - 1, lease_id=lease_id,
                        lease_deadline=now + lease_seconds, expired_lease="", error="")
    log.warning("%s: a late report under the expired lease of %r arrived before any other attempt "
                "started; attempt %d continues", t.id, t.worker_id, t.attempt - 1)
    return db.trial(t.id)


def extend_after_restart(db: Database, lease_seconds: Callable[[str], float], now: float) -> int:
    """Running trials get at least a full lease from ``now``; returns how many were extended."""
    running = [t for t in db.running_trials() if t.lease_deadline < now + lease_seconds(t.study_id)]
    if running:
        with db.transaction():
            for t in running:
                db.update_trial(t.id, lease_deadline=now + lease_seconds(t.study_id))
        log.info("restart: %d running trial(s) get a full lease to reconnect", len(running))
    return len(running)
