"""Checks of request fields that come from outside, each failing with an InvalidArgument naming the field."""
from __future__ import annotations

import math
from typing import Any

from .errors import InvalidArgument

MAX_NAME = 200
MAX_TEXT = 8192
MAX_METRICS = 256


def check_text(field: str, value: Any, max_len: int, required: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: must be a string")
    if required and not value:
        raise InvalidArgument(f"{field}: required")
    if len(value) > max_len:
        raise InvalidArgument(f"{field}: longer than {max_len} characters")


def check_metrics(metrics: dict[str, float]) -> None:
    if len(metrics) > MAX_METRICS:
        raise InvalidArgument(f"metrics: at most {MAX_METRICS} entries")
    for k, v in metrics.items():
        check_text("metric name", k, MAX_NAME, required=True)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InvalidArgument(f"metrics[{k!r}]: must be a finite number, got {v!r} "
                                  "(a NaN loss means the trial is INFEASIBLE)")
