"""Retrying transient store failures with exponential backoff and jitter."""
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


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    The defaults ride out a MinIO restart or a short network blip (about 10 s in total) without
    making a dead endpoint hang a CLI command for minutes.
    """

    attempts: int = 6
    base_delay_s: float = 0.2
    max_delay_s: float = 4.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("RetryPolicy delays must be >= 0")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Sleep before retry number ``attempt`` (1-based): full jitter over an exponential cap.

        Jitter spreads the retries of many trainers that lost the same server at the same moment.
        """
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return (rng or random).uniform(0, cap)


def call_with_retry(fn: Callable[[], T], *, is_transient: Callable[[BaseException], bool],
                    policy: RetryPolicy, what: str,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Calls ``fn`` until it succeeds, retrying errors for which ``is_transient`` is true.

    Non-transient errors propagate at once. When all attempts fail transiently the last error is
    wrapped in :class:`StoreUnavailable`, whose message names ``what`` (never credentials).
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified just below
            if not is_transient(exc):
                raise
            if attempt == policy.attempts:
                raise StoreUnavailable(
                    f"{what} failed after {policy.attempts} attempts: {type(exc).__name__}: {exc}"
                ) from exc
            pause = policy.delay(attempt)
            log.warning("%s failed (%s), retry %d/%d in %.2fs", what, type(exc).__name__,
                        attempt, policy.attempts - 1, pause)
            sleep(pause)
    raise AssertionError("unreachable")  # the loop always returns or raises
