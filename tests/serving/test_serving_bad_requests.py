"""Bad requests get INVALID_ARGUMENT / NOT_FOUND (HTTP 400 / 404) with a message; serving goes on."""
from __future__ import annotations

import base64
import struct
import zlib

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.helpers import make_images, png

TIMEOUT_S = 10
GOOD_IMAGE = png(make_images(1, seed=5)[0][0])


def _png_header(width: int, height: int) -> bytes:
    """A PNG of ``width`` x ``height`` as far as its header says: a few hundred bytes that a decoder
    would expand to width * height pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = zlib.compress(b"\0" * (1 + 3 * 64) * 64)  # a sliver of the image data
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


HUGE_IMAGE = _png_header(10_000, 10_000)  # 100 megapixels in under 1 KB


def _request(name: str = "demo", version: int | None = None, signature: str = "",
             **inputs: object) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    request.model_spec.signature_name = signature
    for key, value in (inputs or {"image_bytes": [GOOD_IMAGE]}).items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


@pytest.mark.parametrize("request_, code, message", [
    (lambda: _request(image_bytes=[b"this is not an image"]), grpc.StatusCode.INVALID_ARGUMENT, "image"),
    (lambda: _request(image_bytes=np.zeros([1], np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "string"),
    (lambda: _request(signature="predict_images", images=np.zeros([1, 8, 8], np.float32)),
     grpc.StatusCode.INVALID_ARGUMENT, "shape"),
    (lambda: _request(wrong_name=[GOOD_IMAGE]), grpc.StatusCode.INVALID_ARGUMENT, "missing"),
    (lambda: _request(signature="nope"), grpc.StatusCode.INVALID_ARGUMENT, "signature 'nope'"),
    (lambda: _request(name="unknown"), grpc.StatusCode.NOT_FOUND, "unknown"),
    (lambda: _request(version=7), grpc.StatusCode.NOT_FOUND, "version 7"),
    (lambda: _request(image_bytes=[b"x" * 250_000]), grpc.StatusCode.INVALID_ARGUMENT, "exceeds the limit"),
    (lambda: _request(image_bytes=[GOOD_IMAGE, HUGE_IMAGE]), grpc.StatusCode.INVALID_ARGUMENT,
     "image 1 of input 'image_bytes' is 10000x10000 pixels"),
    (lambda: _request(signature="predict_images", images=np.full([1, 8, 8, 3], np.nan, np.float32)),
     grpc.StatusCode.INVALID_ARGUMENT, "NaN or infinite"),
])
def test_grpc_bad_request_then_good_one(server, request_, code, message) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(request_(), timeout=TIMEOUT_S)
        assert error.value.code() == code
        assert message in error.value.details()
        good = stub.Predict(_request(), timeout=TIMEOUT_S)
        assert tf.make_ndarray(good.outputs["probabilities"]).shape == (1, 3)


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


@pytest.mark.parametrize("path, body, status, message", [
    ("demo:predict", {"instances": [_b64(b"not an image")]}, 400, "image"),
    ("demo:predict", {"instances": [1.5]}, 400, "string"),
    ("demo:predict", {"signature_name": "predict_images", "inputs": {"images": [[1, 2]]}}, 400, "shape"),
    ("demo:predict", {"instances": [{"b64": "%%%"}]}, 400, "base64"),
    ("demo:predict", b"{not json", 400, "not JSON"),
    ("demo:predict", {"neither": 1}, 400, "instances"),
    ("demo:predict", {"instances": [_b64(b"x" * 250_000)]}, 400, "exceeds the limit"),
    ("unknown:predict", {"instances": [_b64(GOOD_IMAGE)]}, 404, "unknown"),
    ("demo/versions/9:predict", {"instances": [_b64(GOOD_IMAGE)]}, 404, "version 9"),
    ("demo:predict", {"instances": [_b64(HUGE_IMAGE)]}, 400, "the limit is 16 MP"),
    ("demo:predict", b'{"signature_name": "predict_images", "inputs": {"images": [[[[NaN, 1, 2]]]]}}', 400,
     "NaN, which is not JSON"),
    ("demo:predict", b'{"signature_name": "predict_images", "inputs": {"images": [[[[1e999, 1, 2]]]]}}', 400,
     "NaN or infinite"),
    ("demo:predict", b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested deeper"),
    ("demo:predict", b'{"instances": ' + b"[" * 100 + b"]" * 100 + b"}", 400, "nested deeper"),
])
def test_rest_bad_request_then_good_one(server, path, body, status, message) -> None:
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/"
    with requests.Session() as session:
        kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
        bad = session.post(url + path, timeout=TIMEOUT_S, **kwargs)
        assert bad.status_code == status
        assert message in bad.json()["error"]
        good = session.post(url + "demo:predict", json={"instances": [_b64(GOOD_IMAGE)]}, timeout=TIMEOUT_S)
        assert good.status_code == 200 and len(good.json()["predictions"]) == 1
