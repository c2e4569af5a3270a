"""Serving errors, each with the canonical status code the transports answer with.

Translated once: the gRPC servicer aborts with ``grpc.StatusCode[error.code]``, the REST handler
answers ``HTTP_STATUS[error.code]`` with TF Serving's ``{"error": message}`` body.
"""
from __future__ import annotations


class ServingError(Exception):
    """Base class; ``code`` is a canonical gRPC status code name."""

    code = "INTERNAL"


class InvalidInput(ServingError):
    """The request is malformed: bad bytes, dtype, shape, signature name or payload size."""

    code = "INVALID_ARGUMENT"


class NotFound(ServingError):
    """No such model, or no such (loaded) version."""

    code = "NOT_FOUND"


HTTP_STATUS: dict[str, int] = {
    "OK": 200,
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "INTERNAL": 500,
}
