"""Frame clients of a TF Serving endpoint (gRPC or REST), and the per-stream latency summary.

Every call has a deadline: a stalled server costs one frame, never a hung client.
"""
from __future__ import annotations

import base64
import statistics
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
import requests
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from saga.security import channels

# 25 fps leaves 40 ms a frame; a call slower than 2 s is useless for live video and must not
# block the stream.
DEFAULT_TIMEOUT_S = 2.0


class ClassifyError(RuntimeError):
    """The server refused or failed one frame."""


@dataclass(frozen=True)
class FrameResult:
    """The top-1 answer for one frame."""

    index: int
    label: str
    probability: float
    latency_s: float
    version: int


class GrpcFrameClient:
    """Classifies encoded frames with PredictionService.Predict (the default signature)."""

    def __init__(self, address: str, model: str, *, version: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, security: channels.ClientSecurity | None = None) -> None:
        self._security = security
        self._channel = channels.channel(address, security, attach_token=False)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        # Everything but the image is the same for every frame: built once, copied per call.
        self._request = predict_pb2.PredictRequest(output_filter=["classes", "scores"])
        self._request.model_spec.name = model
        if version is not None:
            self._request.model_spec.version.value = version
        image = self._request.inputs["image_bytes"]
        image.dtype = types_pb2.DT_STRING
        image.tensor_shape.dim.add(size=1)
        self.timeout_s = timeout_s

    def classify(self, image: bytes) -> tuple[str, float, int]:
        """(label, probability, version) of one JPEG/PNG image."""
        request = predict_pb2.PredictRequest()
        request.CopyFrom(self._request)
        request.inputs["image_bytes"].string_val.append(image)
        try:
            response = self._stub.Predict(request, timeout=self.timeout_s,
                                          metadata=(self._security or channels.PLAIN).metadata() or None)
        except grpc.RpcError as exc:
            raise ClassifyError(f"{exc.code().name}: {exc.details()}"
                                f"{channels.hint(exc.details(), self._security)}") from exc
        label = response.outputs["classes"].string_val[0].decode()
        return label, _first_float(response.outputs["scores"]), response.model_spec.version.value

    def close(self) -> None:
        self._channel.close()


class RestFrameClient:
    """Classifies encoded frames with TF Serving's REST :predict, on one keep-alive connection."""

    def __init__(self, address: str, model: str, *, version: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, security: channels.ClientSecurity | None = None) -> None:
        security = security or channels.PLAIN
        path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")
        self._url = f"{'https' if security.tls else 'http'}://{address}{path}:predict"
        self._session = requests.Session()
        self._security = security
        # Per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a session's verify.
        tls = security.tls
        self._tls_args: dict[str, object] = {} if tls is None else {
            "verify": str(tls.ca) if tls.ca else True,
            **({"cert": (str(tls.cert), str(tls.key))} if tls.cert and tls.key else {})}
        self.timeout_s = timeout_s

    def classify(self, image: bytes) -> tuple[str, float, int]:
        """(label, probability, version) of one JPEG/PNG image; version is 0 (REST does not say)."""
        body = {"instances": [{"b64": base64.b64encode(image).decode()}]}
        try:
            response = self._session.post(self._url, json=body, timeout=self.timeout_s,
                                          headers=self._security.http_headers(), **self._tls_args)
        except requests.RequestException as exc:
            raise ClassifyError(str(exc)) from exc
        if response.status_code != 200:
            raise ClassifyError(f"HTTP {response.status_code}: {_error_of(response)}")
        prediction = response.json()["predictions"][0]
        return prediction["classes"], float(prediction["scores"]), 0

    def close(self) -> None:
        self._session.close()


def _first_float(tensor: tensor_pb2.TensorProto) -> float:
    """The first value of a float32 TensorProto, whether sent in float_val (as TF Serving does) or
    as raw tensor_content (as this server does)."""
    if tensor.dtype != types_pb2.DT_FLOAT:
        raise ClassifyError(f"scores must be float32, got {types_pb2.DataType.Name(tensor.dtype)}")
    if tensor.tensor_content:
        return struct.unpack_from("<f", tensor.tensor_content)[0]
    return tensor.float_val[0]


def _error_of(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]


@dataclass
class StreamStats:
    """Latencies and labels of a frame stream, for the end-of-stream summary."""

    target_fps: float
    results: list[FrameResult] = field(default_factory=list)
    failures: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, result: FrameResult) -> None:
        self.results.append(result)

    def summary(self) -> dict[str, object]:
        """p50/p95 latency (ms), achieved fps against the target, class counts, failures."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        latencies = sorted(r.latency_s * 1000 for r in self.results)
        frames = len(self.results) + self.failures
        fps = frames / elapsed
        return {
            "frames": frames,
            "failures": self.failures,
            "p50_ms": _percentile(latencies, 50),
            "p95_ms": _percentile(latencies, 95),
            "fps": fps,
            "target_fps": self.target_fps,
            "real_time": fps >= self.target_fps and self.failures == 0,
            "classes": dict(Counter(r.label for r in self.results).most_common()),
        }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
