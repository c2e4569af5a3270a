"""Disk and database failures as errors a client can act on, never INTERNAL.

A full disk is RESOURCE_EXHAUSTED with a retry hint (space may be freed; the trainer keeps its
result and tries again); anything else the database raises (busy, I/O error, read-only volume) is
UNAVAILABLE. Nothing is stored half: every write is one transaction, rolled back on failure.
"""
from __future__ import annotations

import errno
import sqlite3

from .errors import OptimizerError, ResourceExhausted, Unavailable

# How long a client should wait before retrying a write refused for a full disk.
FULL_DISK_RETRY_S = 10.0
_FULL = {sqlite3.SQLITE_FULL}
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def storage_error(exc: BaseException) -> OptimizerError | None:
    """The domain error for a failure of the optimizer's own storage, or None if ``exc`` is not one."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF in _FULL) or "full" in str(exc).lower():
            return ResourceExhausted(f"optimizer database: disk full ({exc}); nothing was stored; free space on "
                                     "the optimizer's volume, the request can then be repeated",
                                     retry_after_s=FULL_DISK_RETRY_S)
        return Unavailable(f"optimizer database unavailable ({getattr(exc, 'sqlite_errorname', type(exc).__name__)}: "
                           f"{exc}); nothing was stored; retry later")
    if isinstance(exc, OSError):
        if exc.errno in _NO_SPACE:
            return ResourceExhausted(f"optimizer disk full ({exc.strerror}); retry later",
                                     retry_after_s=FULL_DISK_RETRY_S)
        return Unavailable(f"optimizer storage error ({exc.strerror or exc}); retry later")
    return None
