"""Why a trial failed, as every user-facing place shows it: one line, no traceback.

A trainer starts the reason of a failure that says something about the *parameters* (the loss
diverged, the model did not fit in memory) with one of :data:`PARAMETER_FAILURES`; the GP learns
from those trials (they count as the worst value seen). Every other failure says something about
the study (a weights file that does not fit, a dataset that changed, a crash) and counts towards
``budget.max_failed_trials``.
"""
from __future__ import annotations

DIVERGED = "diverged"
OUT_OF_MEMORY = "out of memory"
PARAMETER_FAILURES = (DIVERGED, OUT_OF_MEMORY)
MAX_REASON = 500


def one_line(text: str, limit: int = MAX_REASON) -> str:
    """The first non-empty line of ``text`` (a Python traceback: its last line, the exception),
    at most ``limit`` characters."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def counts_as_failure(state: str, error: str) -> bool:
    """Whether a finished trial in ``state`` counts towards the study's consecutive failures."""
    if state == "FAILED":
        return True
    return state == "INFEASIBLE" and not one_line(error).startswith(PARAMETER_FAILURES)
