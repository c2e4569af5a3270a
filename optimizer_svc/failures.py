"""When failing trials end a study: ``budget.max_failed_trials`` consecutive failures in a row
(as Keras Tuner's ``max_consecutive_failed_trials``, Katib's ``maxFailedTrialCount``) end it with
the last reason as its message, instead of spending the budget on trials that fail the same way.

What counts as a failure is the contract's rule (:func:`trial_contract.counts_as_failure`): a
FAILED trial, or an INFEASIBLE one that is not about its parameters (a diverged loss is an
observation the GP learns from, not a broken study).
"""
from __future__ import annotations

from trial_contract import counts_as_failure, one_line

from .db import TrialRow
from .views import TERMINAL


def failure_streak(trials: list[TrialRow]) -> tuple[int, str]:
    """How many of the study's most recently ended trials failed in a row, and the last one's reason."""
    ended = sorted((t for t in trials if t.state in TERMINAL), key=lambda t: (t.ended, t.number))
    streak, reason = 0, ""
    for t in reversed(ended):
        if not counts_as_failure(t.state, t.error):
            break
        streak += 1
        reason = reason or one_line(t.error) or t.state.lower()
    return streak, reason


def stop_message(trials: list[TrialRow], max_failed: int) -> str:
    """The study's message when it must stop for failures, else empty."""
    if max_failed <= 0:
        return ""
    streak, reason = failure_streak(trials)
    if streak < max_failed:
        return ""
    trials = "trial" if streak == 1 else "trials"
    return f"{streak} {trials} failed in a row (budget.max_failed_trials = {max_failed}); last: {reason}"


def last_reason(trials: list[TrialRow]) -> str:
    """The reason of the most recent failed or infeasible trial, for a phase that ended without success."""
    failed = sorted((t for t in trials if t.state in ("FAILED", "INFEASIBLE") and t.error),
                    key=lambda t: (t.ended, t.number))
    return one_line(failed[-1].error) if failed else ""
