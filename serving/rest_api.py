"""TF Serving's REST API over the predictor core, on a threaded stdlib HTTP server.

``POST /v1/models/NAME[/versions/V]:predict``, ``GET /v1/models/NAME[/versions/V]`` (status) and
``GET /v1/models/NAME[/versions/V]/metadata``; errors are ``{"error": message}`` with the HTTP
status of the error's code.
"""
from __future__ import annotations

import json
import logging
import re
import ssl
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from saga.security.guard import Guard, Refusal
from saga.security.tls import ServerTLS
from serving.errors import HTTP_STATUS, InvalidInput, NotFound, ServingError
from serving.metrics import ServingMetrics
from serving.predictor import Predictor
from serving.rest_json import format_predict, load_json, parse_predict

log = logging.getLogger(__name__)
_PATH = re.compile(r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d{1,18}))?"
                   r"(?P<suffix>/metadata|:predict)?/?")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a frame stream reuses one connection
    # One buffered write per response and no Nagle: headers and body sent as two small packets
    # otherwise meet the client's delayed ACK and cost ~40 ms a request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: "RestServer"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        start = time.perf_counter()
        api, model, version = "rest", "", ""
        try:
            match = _PATH.fullmatch(self.path.split("?", 1)[0])
            if match is None:
                raise NotFound(f"no such endpoint: {method} {self.path}")
            name, suffix = match["name"], match["suffix"] or ""
            wanted = int(match["version"]) if match["version"] else None
            if (suffix == ":predict") != (method == "POST"):
                raise NotFound(f"no such endpoint: {method} {self.path}")
            if self.server.guard is not None:
                what = {":predict": "Predict", "/metadata": "GetModelMetadata"}.get(suffix, "GetModelStatus")
                refusal = self.server.guard.check(what, self.headers.get("Authorization"))
                if isinstance(refusal, Refusal):
                    self.close_connection = method == "POST"  # the unread body must not be parsed next
                    self.server.metrics.errors.labels(api, refusal.code.name).inc()
                    self._reply(refusal.http_status, {"error": refusal.message},
                                {"WWW-Authenticate": "Bearer"} if refusal.http_status == 401 else None)
                    return
            if suffix == ":predict":
                api = "rest_predict"
                body, model, version = self._predict(name, wanted)
            elif suffix == "/metadata":
                api = "rest_metadata"
                body, model, version = self._metadata(name, wanted)
            else:
                api = "rest_status"
                body, model, version = self._status(name, wanted)
        except ServingError as exc:
            self.server.metrics.errors.labels(api, exc.code).inc()
            self._reply(HTTP_STATUS.get(exc.code, 500), {"error": str(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - answer 500 with the reason, keep serving
            log.exception("%s %s failed", method, self.path)
            self.server.metrics.errors.labels(api, "INTERNAL").inc()
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self.server.metrics.latency.labels(api, model, str(version)).observe(time.perf_counter() - start)
        self._reply(200, body)

    def _predict(self, name: str, version: int | None) -> tuple[dict[str, Any], str, int]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise InvalidInput("a Content-Length header is required")
        try:
            self.server.predictor.check_payload_size(int(length))
        except InvalidInput:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise
        request = load_json(self.rfile.read(int(length)))
        if not isinstance(request, dict):
            raise InvalidInput("the request body must be a JSON object")
        signature_name = request.get("signature_name")
        if signature_name is not None and not isinstance(signature_name, str):
            raise InvalidInput("'signature_name' must be a string")
        _, signature = self.server.predictor.signature(name, version, signature_name)
        inputs, rows = parse_predict(request, list(signature.inputs))
        result = self.server.predictor.predict(name, version, signature_name, inputs)
        return format_predict(result.outputs, rows), result.model, result.version

    def _metadata(self, name: str, version: int | None) -> tuple[dict[str, Any], str, int]:
        model = self.server.predictor.model(name, version)
        defs = get_model_metadata_pb2.SignatureDefMap()
        for key, value in model.signature_defs.items():
            defs.signature_def[key].CopyFrom(value)
        # TF Serving keeps the proto field names (signature_def, tensor_shape, method_name) and
        # prints fields at their default values (unknown_rank, a dimension's empty name).
        body = {"model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
                "metadata": {"signature_def": json_format.MessageToDict(
                    defs, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)}}
        return body, model.name, model.version

    def _status(self, name: str, version: int | None) -> tuple[dict[str, Any], str, int]:
        statuses = self.server.predictor.status(name, version)
        body = {"model_version_status": [
            {"version": str(s.version), "state": s.state,
             "status": {"error_code": s.error_code, "error_message": s.error_message}}
            for s in statuses]}
        return body, name, statuses[0].version if statuses else 0

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        try:
            data = json.dumps(body, allow_nan=False).encode()  # NaN is not JSON: never send it
        except ValueError:
            status, data = 500, json.dumps({"error": "the model produced NaN or infinite values"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)


class RestServer(ThreadingHTTPServer):
    """A threaded HTTP server answering TF Serving's REST API; HTTPS with ``tls``, bearer tokens
    checked by ``guard``."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], predictor: Predictor, metrics: ServingMetrics, *,
                 tls: ServerTLS | None = None, guard: Guard | None = None) -> None:
        self.predictor = predictor
        self.metrics = metrics
        self.guard = guard
        self._tls = tls.ssl_context() if tls else None
        super().__init__(address, _Handler)
        if self._tls is not None:
            # The handshake happens in the request's own thread (finish_request), so a slow or
            # silent client never holds up accepting the next connection.
            self.socket = self._tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def finish_request(self, request, client_address) -> None:
        if self._tls is not None:
            try:
                request.settimeout(30)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError) as exc:  # no client certificate, plain HTTP, wrong CA
                log.info("TLS handshake with %s failed: %s", client_address[0], exc)
                return
        super().finish_request(request, client_address)
