"""Retrying transient store failures with exponential backoff and jitter, for a budget of time."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from datastore.store import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# A MinIO restart, a rolling upgrade or a node drain takes minutes, not seconds; a trial's upload
# at its end must outlast one (the training is lost otherwise). Env SAGA_S3_RETRY_SECONDS.
DEFAULT_BUDGET_S = 300.0
# While an outage lasts, one log line per this many seconds (the first failure is always logged).
LOG_EVERY_S = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How patiently to retry: until ``budget_s`` seconds have passed since the first failure (and,
    if set, at most ``attempts`` calls in all), sleeping a jittered, growing delay between calls."""

    attempts: int | None = None
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    budget_s: float = DEFAULT_BUDGET_S

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.budget_s < 0:
            raise ValueError("RetryPolicy delays and budget must be >= 0")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Sleep before retry number ``attempt`` (1-based): full jitter over an exponential cap.

        Jitter spreads the retries of many trainers that lost the same server at the same moment.
        """
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** min(attempt - 1, 30)))
        return (rng or random).uniform(0, cap)


def call_with_retry(fn: Callable[[], T], *, is_transient: Callable[[BaseException], bool],
                    policy: RetryPolicy, what: str,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> T:
    """Calls ``fn`` until it succeeds, retrying errors for which ``is_transient`` is true.

    Non-transient errors propagate at once. When the budget is spent the last error is wrapped in
    :class:`StoreUnavailable`, whose message names ``what`` (never credentials).
    """
    give_up = None
    last_log = float("-inf")
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified just below
            if not is_transient(exc):
                raise
            now = clock()
            give_up = now + policy.budget_s if give_up is None else give_up
            pause = policy.delay(attempt)
            out_of_attempts = policy.attempts is not None and attempt >= policy.attempts
            if out_of_attempts or now + pause > give_up:
                spent = f"{attempt} attempts" + (f" over {policy.budget_s - (give_up - now):.0f}s"
                                                  if policy.budget_s >= 1 else "")
                raise StoreUnavailable(f"{what} failed after {spent}: {type(exc).__name__}: {exc}") from exc
            if now - last_log >= LOG_EVERY_S:
                last_log = now
                log.warning("%s failed (%s: %s); retrying for up to %.0fs more", what, type(exc).__name__,
                            str(exc)[:200], give_up - now)
            sleep(pause)
