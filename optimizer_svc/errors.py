"""Domain errors of the optimizer core; the servicer maps each to one gRPC status code."""
from __future__ import annotations


class OptimizerError(Exception):
    """Base class: every error the core raises on purpose."""


class InvalidArgument(OptimizerError):
    """A request or spec that cannot be acted on; the message names the field."""


class NotFound(OptimizerError):
    """An unknown study or trial id."""


class FailedPrecondition(OptimizerError):
    """The request is well-formed but the state forbids it (stale lease, finished trial)."""


class ResourceExhausted(OptimizerError):
    """A limit was hit (too many studies, request too large)."""
