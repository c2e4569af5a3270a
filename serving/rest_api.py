"""TF Serving's REST API over the predictor core, on a threaded stdlib HTTP server.

``POST /v1/models/NAME[/versions/V]:predict``, ``GET /v1/models/NAME[/versions/V]`` (status) and
``GET /v1/models/NAME[/versions/V]/metadata``; errors are ``{"error": message}`` with the HTTP
status of the error's code.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from saga.security.guard import Guard, Refusal
from saga.security.tls import ServerTLS
from serving.access import rest_method
from serving.errors import HTTP_STATUS, InvalidInput, NotFound, ServingError
from serving.https import JSONRequestHandler, ThreadedHTTPSServer
from serving.metrics import ServingMetrics
from serving.predictor import Predictor
from serving.rest_json import format_predict, load_json, parse_predict

log = logging.getLogger(__name__)


class _Handler(JSONRequestHandler):
    server: "RestServer"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        start = time.perf_counter()
        api, model, version = "rest", "", ""
        try:
            route = rest_method(method, self.path)
            if route is None:
                raise NotFound(f"no such endpoint: {method} {self.path}")
            match, what = route
            name, suffix = match["name"], match["suffix"] or ""
            wanted = int(match["version"]) if match["version"] else None
            if self.server.guard is not None:
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
        self.send_json(status, data, headers)


class RestServer(ThreadedHTTPSServer):
    """A threaded HTTP server answering TF Serving's REST API; HTTPS with ``tls``, bearer tokens
    checked by ``guard``."""

    def __init__(self, address: tuple[str, int], predictor: Predictor, metrics: ServingMetrics, *,
                 tls: ServerTLS | None = None, guard: Guard | None = None) -> None:
        self.predictor = predictor
        self.metrics = metrics
        self.guard = guard
        super().__init__(address, _Handler, tls)
