"""A small supervisor of local service processes: start, wait until ready, watch, stop them all.

Every child runs in its own session (process group), so stopping it reaches anything it spawned
too; SIGTERM first (the services hand back leases and close cleanly), SIGKILL for stragglers.
Each child's stdout and stderr go to one log file, started afresh for each run, which is also where
readiness is read from (so a previous run's lines can never be taken for this one's). On Linux a
child also gets SIGTERM when the supervisor dies without stopping it (SIGKILL, a crash), so no
service outlives the command that started it.
"""
from __future__ import annotations

import ctypes
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence, TextIO

import psutil


def _die_with_parent() -> object | None:
    """A ``preexec_fn`` asking the kernel to SIGTERM the child when its parent dies (Linux
    ``PR_SET_PDEATHSIG``), resolved before the fork so the child only makes one C call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return functools.partial(prctl, 1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG


_PREEXEC = _die_with_parent()


class ProcessError(RuntimeError):
    """A child did not start, or died; the message names it and quotes its last log lines."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for services that cannot report the port they bound)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def say(text: str, stream: TextIO | None = None) -> None:
    """Prints a line for the user; a reader that went away (``saga up | tee`` after Ctrl-C) is no
    error: what follows (stopping every child) must still happen."""
    try:
        print(text, file=stream or sys.stdout, flush=True)
    except (OSError, ValueError):  # BrokenPipeError, a closed stream
        pass


def listening_ports(pid: int) -> set[int]:
    """TCP ports on which ``pid`` or one of its descendants listens."""
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        return set()
    ports = set()
    for proc in procs:
        try:
            ports |= {c.laddr.port for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
    return ports


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return ""


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen
    tier: int = 0                  # stop order: higher tiers stop (and are waited for) first
    ready: re.Match | None = None  # the log line's match that said the service is up

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe_death(self) -> str:
        code = self.proc.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        last = tail(self.log).rstrip()
        return f"{self.name} (pid {self.pid}) {how}; last lines of {self.log}:\n{_indent(last) or '  (empty log)'}"


@dataclass
class Supervisor:
    """Starts children, watches them, stops them all. Use as a context manager so that an error
    anywhere still stops what was started."""

    log_dir: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    stop_timeout_s: float = 15.0
    children: list[Child] = field(default_factory=list)

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, argv: Sequence[str], *, ready: str | None = None, tier: int = 0,
              ready_timeout_s: float = 120.0, extra_env: Mapping[str, str] | None = None) -> Child:
        """Starts ``argv`` logging to ``<log_dir>/<name>.log``. With ``ready`` (a regex), waits
        until a log line matches it; ProcessError if the child dies or the time runs out first.
        ``tier``: children that depend on others get a higher tier, so they stop first (a
        trainer hands its trial back while the optimizer still listens)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        env = {**self.env, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        with open(log, "wb") as out:  # a fresh log per run
            # start_new_session: the child leads its own process group, so killpg reaches its
            # children too, and a Ctrl-C on the terminal reaches only us (we stop it in order).
            proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True, preexec_fn=_PREEXEC)
        child = Child(name, list(argv), log, proc, tier)
        self.children.append(child)
        if ready is not None:
            self.wait_ready(child, ready, ready_timeout_s)
        return child

    def wait_ready(self, child: Child, ready: str, timeout_s: float = 120.0) -> re.Match:
        """Waits until a line of the child's log matches the regex ``ready``; returns the match
        (also kept as ``child.ready``). ProcessError if it dies or ``timeout_s`` runs out first."""
        pattern = re.compile(ready)
        deadline = time.monotonic() + timeout_s
        while True:
            match = pattern.search(child.log.read_text(errors="replace")) if child.log.exists() else None
            if match:
                child.ready = match
                return match
            if not child.alive():
                raise ProcessError(f"{child.name} did not start: {child.describe_death()}")
            if time.monotonic() > deadline:
                raise ProcessError(f"{child.name} did not report ready within {timeout_s:.0f}s "
                                   f"(waiting for /{pattern.pattern}/); last lines of {child.log}:\n"
                                   f"{_indent(tail(child.log).rstrip())}")
            time.sleep(0.2)

    def check_listening(self, child: Child, *ports: int) -> None:
        """ProcessError unless ``child`` itself listens on every one of ``ports`` (the port a
        service reports is answered by that service, not by another process)."""
        own = listening_ports(child.pid)
        for port in ports:
            if port not in own:
                raise ProcessError(f"{child.name} (pid {child.pid}) reported port {port} but does not listen "
                                   f"on it{_holder(port)}; last lines of {child.log}:\n{_indent(tail(child.log).rstrip())}")

    def dead(self) -> list[Child]:
        """Children that have exited."""
        return [c for c in self.children if not c.alive()]

    def check(self) -> None:
        """ProcessError naming every child that has died."""
        dead = self.dead()
        if dead:
            raise ProcessError("\n".join(c.describe_death() for c in dead))

    def watch(self, stop: threading.Event) -> None:
        """Blocks until ``stop`` is set (returns) or a child dies (ProcessError)."""
        while not stop.wait(0.5):
            self.check()

    def stop_all(self) -> list[str]:
        """SIGTERM to every child's process group, tier by tier (highest first), waiting for each
        tier; SIGKILL for what is left when ``stop_timeout_s`` has passed. Returns the names of
        children that had to be killed. Safe to call twice."""
        deadline = time.monotonic() + self.stop_timeout_s
        killed = []
        for tier in sorted({c.tier for c in self.children}, reverse=True):
            group = [c for c in self.children if c.tier == tier]
            for child in group:
                _signal_group(child.proc, signal.SIGTERM)
            for child in group:
                try:
                    child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    killed.append(child.name)
                    _signal_group(child.proc, signal.SIGKILL)
                    child.proc.wait()
                # The leader is gone; anything it spawned into its group goes too.
                _signal_group(child.proc, signal.SIGKILL)
        return killed


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # pgid == pid: the child is its session's leader
    except (ProcessLookupError, PermissionError):
        pass


def _holder(port: int) -> str:
    """", held by pid N (command)" for a listening port, as far as this user may see."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return f"; pid {conn.pid} ({' '.join(psutil.Process(conn.pid).cmdline()[:4])}) listens there"
    except psutil.Error:
        pass
    return ""


def _indent(text: str) -> str:
    return "\n".join(f"  | {line}" for line in text.splitlines())


class StopRequested(BaseException):
    """SIGTERM or SIGINT arrived. A BaseException, like KeyboardInterrupt: an interruption is not
    an error that ``except Exception`` handlers (e.g. a demo step's) should turn into one."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def raise_on_stop_signals() -> None:
    """SIGTERM, SIGINT and SIGHUP (the terminal closed) raise StopRequested in the main thread,
    once: a further signal during the shutdown is ignored so that the shutdown is not cut short."""
    def handler(signum: int, frame: object) -> None:
        ignore_stop_signals()
        raise StopRequested(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def ignore_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
