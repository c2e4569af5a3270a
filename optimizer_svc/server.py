"""Builds the optimizer's gRPC server (``make_server``) and runs it (``serve``).

The server is grpc.aio on an event loop of its own thread, so synchronous code (the entry point,
tests) drives it like grpcio's threaded server: ``start()``, ``stop(grace).wait()``.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from typing import Any, Coroutine, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from saga.ports import GRPC_SERVER_OPTIONS, bind_failed, check_free, split_address, start_metrics_server
from saga.security.guard import AioGuardInterceptor, Guard
from saga.security.tls import ServerTLS, add_port, exposure_warning
from saga.security.tokens import TokenFile
from saga.v1 import optimizer_pb2, optimizer_pb2_grpc

from .admission import Admission, Limits
from .core import OptimizerCore
from .datasets import DatasetCheck
from .lease_broker import LeaseBroker
from .policy import POLICY
from .projects import Projects
from .proposals import ProposalProcesses
from .servicer import OptimizerServicer

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE_NAME = optimizer_pb2.DESCRIPTOR.services_by_name["Optimizer"].full_name
# Specs and completions are small; 4 MiB refuses runaway requests with RESOURCE_EXHAUSTED.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class OptimizerServer:
    """The Optimizer, health and reflection services on one port; use :func:`make_server`."""

    def __init__(self, core: OptimizerCore, address: str, limits: Limits, max_message_bytes: int,
                 tls: ServerTLS | None = None, tokens: TokenFile | None = None, health_address: str | None = None):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-loop", daemon=True)
        self._thread.start()
        self.admission = Admission(limits)
        try:
            self.port = self._run(self._build(core, address, max_message_bytes, tls, tokens))
            self._health_server, self.health_port = None, None
            if health_address is not None:
                self.health_port = self._run(self._build_health(health_address))
        except BaseException:
            self._close_loop()
            raise

    async def _build(self, core: OptimizerCore, address: str, max_message_bytes: int,
                     tls: ServerTLS | None, tokens: TokenFile | None) -> int:
        self.broker = LeaseBroker(core, self.admission, self._loop)

        def refused(method: str, code: str) -> None:  # counted like every other answer
            core.metrics.rpcs.labels(method, code).inc()
        self.guard = None if tokens is None else Guard(tokens, POLICY, "the optimizer", on_refusal=refused)
        self._server = grpc.aio.server(interceptors=[AioGuardInterceptor(self.guard)] if self.guard else [],
                                       options=[*GRPC_SERVER_OPTIONS,
                                                ("grpc.max_receive_message_length", max_message_bytes),
                                                ("grpc.max_send_message_length", 64 * 1024 * 1024)])
        servicer = OptimizerServicer(core, self.admission, self.broker, self.guard)
        optimizer_pb2_grpc.add_OptimizerServicer_to_server(servicer, self._server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
                                            self._server)
        host, port = split_address(address)
        check_free("optimizer", host, port)
        try:
            return add_port(self._server, address, tls)
        except RuntimeError as e:
            raise bind_failed("optimizer", host, port, e) from None

    async def _build_health(self, address: str) -> int:
        """Kubelet's gRPC probes speak neither TLS nor tokens: the health service alone, in plain
        text, on a port of its own (the API's port stays TLS-only)."""
        self._health_server = grpc.aio.server(options=list(GRPC_SERVER_OPTIONS))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
        host, port = split_address(address)
        check_free("optimizer health", host, port)
        try:
            return self._health_server.add_insecure_port(address)
        except RuntimeError as e:
            raise bind_failed("optimizer health", host, port, e) from None

    def start(self) -> None:
        self._run(self._server.start())
        if self._health_server is not None:
            self._run(self._health_server.start())

    def stop(self, grace: float | None) -> threading.Event:
        """Stops accepting calls, lets calls in progress finish for ``grace`` seconds, then ends;
        returns an event set when everything has stopped."""
        done = threading.Event()
        if not self._loop.is_running():
            done.set()
            return done

        async def stop() -> None:
            await self.health.enter_graceful_shutdown()
            if self._health_server is not None:
                await self._health_server.stop(0)
            await self._server.stop(grace)
            self.broker.close()
            await self._loop.run_in_executor(None, self.admission.shutdown)

        future = asyncio.run_coroutine_threadsafe(stop(), self._loop)
        future.add_done_callback(lambda _: (self._close_loop(), done.set()))
        return done

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


def make_server(core: OptimizerCore, address: str, *, limits: Limits | None = None,
                max_message_bytes: int = MAX_MESSAGE_BYTES, tls: ServerTLS | None = None,
                tokens: TokenFile | None = None, health_address: str | None = None) -> tuple[OptimizerServer, int]:
    """An unstarted server bound to ``address``; returns (server, port). PortInUse (an OSError
    naming the port) when another process listens there. ``tls``: serve TLS (mutual with a client
    CA); ``tokens``: every call but health and reflection needs a token of a role the policy
    allows (optimizer_svc.policy); None: no tokens asked. ``health_address``: also serve the health
    service alone, in plain text, there (for kubelet probes when the API port has TLS)."""
    server = OptimizerServer(core, address, limits or Limits(), max_message_bytes, tls, tokens, health_address)
    return server, server.port


class LeaseReaper(threading.Thread):
    """Re-queues trials whose lease expired, every ``interval`` seconds, until stopped."""

    def __init__(self, core: OptimizerCore, interval: float = 1.0):
        super().__init__(name="lease-reaper", daemon=True)
        self.core, self.interval = core, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.core.expire_leases()
            except Exception:  # keep reaping; the next round retries
                log.exception("expiring leases failed")


def serve(*, host: str, port: int, db: str, metrics_port: int | None, reap_interval: float = 1.0,
          limits: Limits | None = None, check_datasets: bool = True, offline: bool = False,
          tls: ServerTLS | None = None, tokens: TokenFile | None = None, health_port: int | None = None,
          projects: Projects | None = None, proposal_processes: int = 2) -> None:
    """Runs the service until SIGTERM or SIGINT. PortInUse when a port is taken. ``check_datasets``:
    read each new study's dataset manifest when the store is reachable (optimizer_svc.datasets).
    ``proposal_processes``: processes for the model's proposals (0: in this process)."""
    check_free("optimizer", host, port)
    core = OptimizerCore(db, datasets=DatasetCheck() if check_datasets else None, offline=offline, projects=projects,
                         proposals=ProposalProcesses(proposal_processes) if proposal_processes else None)
    try:
        server, bound = make_server(core, f"{host}:{port}", limits=limits, tls=tls, tokens=tokens,
                                    health_address=None if health_port is None else f"{host}:{health_port}")
        if metrics_port is not None:
            http = start_metrics_server("optimizer", metrics_port, core.metrics.registry)
            print(f"optimizer metrics on :{http}/metrics", flush=True)
    except BaseException:
        core.close()
        raise
    reaper = LeaseReaper(core, reap_interval)
    reaper.start()
    # What exists now (modules, classes, the server) lives as long as the process: out of the
    # garbage collector's sight, so its full collections walk only what calls create (shorter pauses).
    gc.freeze()
    server.start()
    mode = ("mutual TLS" if tls.client_ca else "TLS") if tls else "plain text"
    auth = "tokens required" if tokens else "no tokens"
    log.info("optimizer listening on %s:%d (%s, %s; database %s)", host, bound, mode, auth, db)
    print(f"optimizer listening on {host}:{bound} ({mode}, {auth})", flush=True)
    warning = exposure_warning("the optimizer", host, tls, tokens)
    if warning:
        log.warning("%s", warning)
    if server.health_port is not None:
        print(f"optimizer health (plain text) on {host}:{server.health_port}", flush=True)
    done = threading.Event()

    def stop(signum, frame):
        log.info("signal %d: stopping", signum)
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    done.wait()
    reaper.stopped.set()
    server.stop(grace=5).wait()
    core.close()
