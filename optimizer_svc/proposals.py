"""Where a phase's proposals are computed: in the core's own process (``Proposals``, what the library
and the tests use), or in processes of their own at a lower CPU priority (``ProposalProcesses``, what
``saga optimizer`` uses).

A GP fit on hundreds of observations takes seconds of CPU. Inside the optimizer's process it holds
the interpreter lock for long stretches, and every short call (ReportProgress, CompleteTrial, the
health check) waits behind it. In a process of its own the operating system shares the cores
instead, and the lower priority (``nice``) lets the short calls go first: proposals are throughput
work, answers are latency work (docs/BENCHMARKS.md, "Optimizer under many workers").

Either way there is one proposer per (study, phase), kept between proposals (its GP warm-starts
from the last fit), so proposals stay deterministic per study seed, phase and trial number. A study
always goes to the same process. A failing model falls back to a random point (``propose_safely``);
a proposal process that dies (killed, out of memory) is replaced, and that one proposal is random.
Random proposals are cheap and are always made in the core's process.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from threadpoolctl import ThreadpoolController

from .proposer import Proposer, RandomProposer, make_proposer, propose_safely
from .space import Param

log = logging.getLogger(__name__)
PARENT_CHECK_S = 1.0  # how often a proposal process looks whether the optimizer still runs

Observations = list[tuple[dict[str, Any], float]]


@dataclass(frozen=True)
class Engine:
    """How to build a phase's proposer (``make_proposer``'s arguments)."""

    params: tuple[Param, ...]
    seed: int
    initial_points: int
    random_only: bool
    algorithm: str

    @property
    def is_random(self) -> bool:
        return self.random_only or self.algorithm == "random"

    def build(self) -> Proposer:
        return make_proposer(list(self.params), seed=self.seed, initial_points=self.initial_points,
                             random_only=self.random_only, algorithm=self.algorithm)


@dataclass(frozen=True)
class Proposal:
    point: dict[str, Any]
    failure: str = ""          # why the model's proposal failed and this point is random ("" if it did not)
    fit_seconds: float = 0.0   # the model fit's share of the proposal (0 when nothing was fitted)


class Proposals:
    """Proposals in the calling process."""

    def __init__(self) -> None:
        self._proposers: dict[tuple[str, int], Proposer] = {}

    def propose(self, key: tuple[str, int], engine: Engine, number: int, observations: Observations,
                pending: list[dict[str, Any]]) -> Proposal:
        return _propose(self._proposers, key, engine, number, observations, pending)

    def close(self) -> None:
        pass


class ProposalProcesses(Proposals):
    """Model proposals in ``processes`` worker processes at ``nice`` (studies spread by id)."""

    def __init__(self, processes: int = 2, nice: int = 10):
        super().__init__()
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.nice = nice
        self._pools: list[ProcessPoolExecutor | None] = [None] * processes
        self._guard = threading.Lock()

    def propose(self, key, engine, number, observations, pending):
        if engine.is_random:
            return super().propose(key, engine, number, observations, pending)
        slot = zlib.crc32(key[0].encode()) % len(self._pools)
        try:
            pool = self._pool(slot)
            return pool.submit(_propose_here, key, engine, number, observations, pending).result()
        except OSError as e:  # no process could be started here (limits, no /dev/shm): do it in this one
            log.error("cannot run proposals in a process of their own (%s); computing them in the optimizer's", e)
            return super().propose(key, engine, number, observations, pending)
        except BrokenProcessPool:
            self._discard(slot, pool)
            why = "the proposal process ended unexpectedly (killed, or out of memory); it is restarted"
            log.error("study %s phase %d: %s; trial %d is a random point", key[0], key[1], why, number)
            point = RandomProposer(list(engine.params), engine.seed).propose(number, observations, pending)
            return Proposal(point, failure=why)

    def pids(self) -> list[int]:
        """The proposal processes running now (for tests and diagnostics)."""
        with self._guard:
            return [p.pid for pool in self._pools if pool is not None for p in pool._processes.values()]

    def close(self) -> None:
        with self._guard:
            pools, self._pools = self._pools, [None] * len(self._pools)
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def _pool(self, slot: int) -> ProcessPoolExecutor:
        with self._guard:
            pool = self._pools[slot]
            if pool is None:
                # spawn, not fork: the optimizer's process runs gRPC's threads
                pool = self._pools[slot] = ProcessPoolExecutor(1, mp_context=get_context("spawn"),
                                                               initializer=_start_worker,
                                                               initargs=(self.nice, os.getpid()))
            return pool

    def _discard(self, slot: int, pool: ProcessPoolExecutor) -> None:
        with self._guard:
            if self._pools[slot] is pool:
                self._pools[slot] = None
        pool.shutdown(wait=False, cancel_futures=True)


# A proposal's linear algebra runs on one BLAS thread, in either place. Its matrices are small
# (hundreds of rows at most): a second thread only spins waiting for work, which cost a proposal in a
# proposal process several times its CPU and, at that process's low priority, several times its wall
# time (bench/parallel_efficiency.py). And the thread count changes the last bits of the results:
# one thread everywhere keeps a study's proposals the same in the core's process, in a proposal
# process and on a machine with more cores.
_BLAS_LOCK = threading.Lock()   # one proposal at a time under the limit (it is process-wide)
_blas: ThreadpoolController | None = None


def _propose(proposers: dict[tuple[str, int], Proposer], key: tuple[str, int], engine: Engine, number: int,
             observations: Observations, pending: list[dict[str, Any]]) -> Proposal:
    global _blas
    proposer = proposers.get(key)
    if proposer is None:
        proposer = proposers[key] = engine.build()
    with _BLAS_LOCK:
        if _blas is None:   # after the GP's modules have loaded numpy's and scipy's BLAS (the limit
            from . import gp  # noqa: F401  applies to the libraries loaded when it is set up)
            _blas = ThreadpoolController()
        with _blas.limit(limits=1, user_api="blas"):
            point, failure = propose_safely(proposer, number, observations, pending)
    if failure is not None:
        log.error("study %s phase %d: the model's proposal failed (%s: %s); trial %d is a random point",
                  key[0], key[1], type(failure).__name__, failure, number, exc_info=failure)
    why = f"{type(failure).__name__}: {failure}" if failure is not None else ""
    return Proposal(point, why, getattr(proposer, "last_fit_seconds", 0.0) or 0.0)


# -- in a proposal process
_HERE: dict[tuple[str, int], Proposer] = {}


def _start_worker(nice: int, parent: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s proposals: %(message)s")
    if nice:
        # Below the calls, but never starved: SCHED_IDLE was tried, and beside two busy processes a
        # restarted proposal process took minutes to import its engine (a tenth of a core at nice 10).
        os.nice(nice)
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    """Ends this process when the optimizer is gone (killed with -9, its queues never close)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _propose_here(key, engine, number, observations, pending) -> Proposal:
    return _propose(_HERE, key, engine, number, observations, pending)
