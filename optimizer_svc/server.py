"""Builds the optimizer's gRPC server (``make_server``) and runs it (``serve``)."""
from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from saga.v1 import optimizer_pb2, optimizer_pb2_grpc

from .core import OptimizerCore
from .servicer import OptimizerServicer

log = logging.getLogger(__name__)

SERVICE_NAME = optimizer_pb2.DESCRIPTOR.services_by_name["Optimizer"].full_name
# Specs and completions are small; 4 MiB refuses runaway requests with RESOURCE_EXHAUSTED.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def make_server(core: OptimizerCore, address: str, *, max_workers: int = 64,
                max_message_bytes: int = MAX_MESSAGE_BYTES) -> tuple[grpc.Server, int]:
    """An unstarted server with the Optimizer, health and reflection services; returns (server, port)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
                         options=[("grpc.max_receive_message_length", max_message_bytes),
                                  ("grpc.max_send_message_length", 64 * 1024 * 1024)])
    optimizer_pb2_grpc.add_OptimizerServicer_to_server(OptimizerServicer(core), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port


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
          offline: bool = False) -> None:
    """Runs the service until SIGTERM or SIGINT."""
    core = OptimizerCore(db, offline=offline)
    server, bound = make_server(core, f"{host}:{port}")
    if metrics_port is not None:
        http, _ = start_http_server(metrics_port, registry=core.metrics.registry)
        print(f"optimizer metrics on :{http.server_port}/metrics", flush=True)
    reaper = LeaseReaper(core, reap_interval)
    reaper.start()
    server.start()
    log.info("optimizer listening on %s:%d (database %s)", host, bound, db)
    print(f"optimizer listening on {host}:{bound}", flush=True)
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
