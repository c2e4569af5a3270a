"""Helpers for the local-stack tests: running ``saga`` as a real process and finding what is left."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def saga_process(*args: str, **kw) -> subprocess.Popen:
    """``saga ARGS`` in its own session (so the test can kill everything it spawned if it fails)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "saga.cli.main", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)


def read_until(proc: subprocess.Popen, pattern: str, timeout_s: float) -> str:
    """stdout lines until one matches ``pattern``; AssertionError with the output otherwise."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    raise AssertionError(f"no line matching {pattern!r} within {timeout_s}s; exit {proc.poll()}; "
                         f"stdout:\n{''.join(seen)}\nstderr:\n{proc.stderr.read() if proc.poll() is not None else ''}")


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, pgid) of a live process, None when gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            parents.setdefault(st[0], []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _stat(pid) is not None  # a zombie is not alive


def in_groups(pgids: set[int]) -> set[int]:
    """Live processes whose process group is one of ``pgids``."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None and st[1] in pgids:
            out.add(int(entry.name))
    return out


def kill_tree(proc: subprocess.Popen, pids: set[int]) -> None:
    """Last-resort cleanup after a failed test: nothing it started may outlive it."""
    for pid in pids | {proc.pid}:
        for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                pass
    proc.wait(timeout=30)
