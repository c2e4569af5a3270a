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
    """A limit was hit (too many studies, request too large). ``retry_after_s`` > 0 when the limit is
    temporary (a full disk, too many open streams) and the same request may pass later."""

    def __init__(self, message: str, retry_after_s: float = 0.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(OptimizerError):
    """The service cannot act now but may soon (its database is busy or failing); worth retrying."""


class Unauthenticated(OptimizerError):
    """No token, or one the service does not know (only from a client: the core never raises it)."""


class PermissionDenied(OptimizerError):
    """The token's role or projects do not allow the call."""
