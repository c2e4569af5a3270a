"""The one-machine TF Serving stand-in: a factory building the servers, and their lifecycle.

``make_server(config)`` returns an unstarted :class:`ServingServer`; ``start()`` loads the models
present, then serves gRPC (PredictionService, ModelService, health), REST and Prometheus metrics.
"""
from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from saga.ports import GRPC_SERVER_OPTIONS, bind_failed, check_free
from saga.security.guard import Guard, GuardInterceptor
from saga.security.tls import ServerTLS, add_port, exposure_warning
from saga.security.tokens import TokenFile
from serving.access import POLICY
from serving.batching import BatchingQueue
from serving.grpc_api import ModelStatusServicer, PredictionServicer
from serving.input_limits import DEFAULT_MAX_IMAGE_PIXELS
from serving.layout import ModelBase, open_model_base
from serving.metrics import ServingMetrics
from serving.predictor import DEFAULT_MAX_PAYLOAD_BYTES, Predictor
from serving.registry import ModelRegistry
from serving.rest_api import RestServer

log = logging.getLogger(__name__)
_SERVICES = ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs; port 0 picks a free port (see ServingServer.*_port)."""

    model_base: str | Path | ModelBase
    model_names: tuple[str, ...]
    host: str = "0.0.0.0"
    grpc_port: int = 8500
    rest_port: int | None = 8501
    metrics_port: int | None = None
    max_versions: int = 2
    poll_interval_s: float = 1.0
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    batching: bool = False
    max_batch_size: int = 8
    batch_timeout_s: float = 0.005
    grpc_workers: int = 16
    cache_dir: str | None = None
    all_models: bool = False          # also serve every other model that appears in the base
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    tls: ServerTLS | None = None      # gRPC and REST over TLS (mutual with tls.client_ca)
    tokens: TokenFile | None = None   # every call but health needs a token from this file


class ServingServer:
    """The running parts; use :func:`make_server` to build one."""

    def __init__(self, config: ServerConfig, registry: ModelRegistry, predictor: Predictor,
                 grpc_server: grpc.Server, grpc_port: int, rest: RestServer | None,
                 health_servicer: health.HealthServicer) -> None:
        self.config = config
        self.registry = registry
        self.predictor = predictor
        self.metrics = registry.metrics
        self.grpc_server = grpc_server
        self.grpc_port = grpc_port
        self.rest = rest
        self.rest_port = rest.server_address[1] if rest else None
        self.metrics_port: int | None = None
        self._health = health_servicer
        self._metrics_http = None
        self._rest_thread: threading.Thread | None = None

    def start(self) -> None:
        """Loads the models present now, then starts every endpoint and the model watcher."""
        self.registry.add_listener(self._update_health)
        self.registry.start()
        self.grpc_server.start()
        if self.rest is not None:
            self._rest_thread = threading.Thread(target=self.rest.serve_forever, name="saga-rest",
                                                 kwargs={"poll_interval": 0.2}, daemon=True)
            self._rest_thread.start()
        if self.config.metrics_port is not None:
            self._metrics_http, _ = self.metrics.serve(self.config.metrics_port, self.config.host)
            self.metrics_port = self._metrics_http.server_address[1]
        log.info("serving %s: gRPC :%s, REST :%s, metrics :%s", ",".join(self.registry.names),
                 self.grpc_port, self.rest_port, self.metrics_port)
        warning = exposure_warning("the model server", self.config.host, self.config.tls, self.config.tokens)
        if warning:
            log.warning("%s", warning)

    def _update_health(self) -> None:
        state = (health_pb2.HealthCheckResponse.SERVING if self.registry.ready()
                 else health_pb2.HealthCheckResponse.NOT_SERVING)
        for service in _SERVICES:
            self._health.set(service, state)

    def stop(self, grace_s: float = 2.0) -> None:
        """Stops accepting requests, lets running ones finish for ``grace_s``, stops the watcher."""
        self._health.enter_graceful_shutdown()
        if self.rest is not None:
            self.rest.shutdown()
            self.rest.server_close()
        self.grpc_server.stop(grace_s).wait()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        self.registry.stop()

    def wait_for_termination(self) -> None:
        """Blocks until the gRPC server stops."""
        self.grpc_server.wait_for_termination()


def make_server(config: ServerConfig) -> ServingServer:
    """Builds (does not start) a server; ValueError for a bad configuration."""
    metrics = ServingMetrics()
    registry = ModelRegistry(open_model_base(config.model_base), config.model_names,
                             max_versions=config.max_versions, poll_interval_s=config.poll_interval_s,
                             cache_dir=config.cache_dir, metrics=metrics, discover=config.all_models)
    batching = None
    if config.batching:
        batching = BatchingQueue(config.max_batch_size, config.batch_timeout_s,
                                 on_batch=lambda key, n: metrics.batch_size.labels(key[0]).observe(n))
    predictor = Predictor(registry, max_payload_bytes=config.max_payload_bytes, batching=batching,
                          max_image_pixels=config.max_image_pixels)
    # The transport accepts a little more than the limit, so that an oversized request gets the
    # predictor's INVALID_ARGUMENT with a message rather than a bare RESOURCE_EXHAUSTED.
    limit = config.max_payload_bytes + 64 * 1024
    # A taken port is a PortInUse naming it, before anything is started (saga.ports).
    for what, port in (("serving gRPC", config.grpc_port), ("serving REST", config.rest_port),
                       ("serving metrics", config.metrics_port)):
        if port is not None:
            check_free(what, config.host, port)
    guard = Guard(config.tokens, POLICY, "this model server") if config.tokens is not None else None
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.grpc_workers,
                                                         thread_name_prefix="saga-grpc"),
                              interceptors=[GuardInterceptor(guard)] if guard else None,
                              options=[*GRPC_SERVER_OPTIONS, ("grpc.max_receive_message_length", limit),
                                       ("grpc.max_send_message_length", 64 * 1024 * 1024)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(predictor, metrics), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelStatusServicer(predictor, metrics),
                                                              grpc_server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    try:
        grpc_port = add_port(grpc_server, f"{config.host}:{config.grpc_port}", config.tls)
    except RuntimeError as e:
        raise bind_failed("serving gRPC", config.host, config.grpc_port, e) from None
    rest = (RestServer((config.host, config.rest_port), predictor, metrics, tls=config.tls, guard=guard)
            if config.rest_port is not None else None)
    return ServingServer(config, registry, predictor, grpc_server, grpc_port, rest, health_servicer)
