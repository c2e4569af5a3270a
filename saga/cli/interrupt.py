"""Ctrl-C and SIGTERM for client commands: the command ends within a second, whatever it is
blocked in, with exit code 130 (SIGINT) or 143 (SIGTERM) and no traceback.

Python delivers a signal by raising an exception in the main thread at the next bytecode. Raised
inside grpcio's waiting code (a quiet WatchStudy stream, a unary call), that exception can leave
one of grpcio's locks held, and the channel's close then waits forever (issue 17). So a client
command runs in a worker thread and the main thread only waits for it: the signal lands in that
wait, which holds no lock, and the process exits at once. Services (optimizer, trainer, serve,
up, demo) keep the main thread and handle their signals themselves, since they must stop children
or hand trials back first.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
# How long the exit waits for buffered output to reach stdout/stderr; a reader that stopped
# reading a full pipe must not keep the process alive.
FLUSH_WAIT_S = 0.5


class _Signalled(BaseException):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def run_interruptible(command: Callable[[], int]) -> int:
    """Runs ``command`` in a worker thread; returns its exit code, re-raises what it raised, or
    ends the process with 128 + the signal number on SIGINT or SIGTERM."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["rc"] = command()
        except BaseException as e:  # handed to the main thread, which raises it there
            outcome["error"] = e

    def on_signal(signum: int, frame: object) -> None:
        raise _Signalled(signum)

    worker = threading.Thread(target=target, name="saga-command", daemon=True)
    previous = {sig: signal.signal(sig, on_signal) for sig in EXIT_CODES}
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
    except _Signalled as s:
        _exit_now(EXIT_CODES.get(signal.Signals(s.signum), 128 + s.signum))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return int(outcome.get("rc") or 0)


def _exit_now(code: int) -> None:
    """Flushes what the command printed (bounded wait), then exits without running cleanup that
    could block on the worker thread's locks."""
    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass

    flusher = threading.Thread(target=flush, daemon=True)
    flusher.start()
    flusher.join(FLUSH_WAIT_S)
    os._exit(code)
