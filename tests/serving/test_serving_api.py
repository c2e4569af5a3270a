"""The server through the official tensorflow-serving-api stubs and TF Serving's REST format."""
from __future__ import annotations

import base64
import json

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from serving.client import ClassifyError, GrpcFrameClient, RestFrameClient, _first_float
from tests.serving.helpers import CLASSES, make_images, png, reference

TIMEOUT_S = 10  # generous: the test machine's two cores are shared with other suites


def _channel(server) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")


def test_grpc_predict_equals_keras_model(server, model) -> None:
    images, _ = make_images(5, seed=11)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "demo"
    request.model_spec.signature_name = "serving_default"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([png(i) for i in images]))
    with _channel(server) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=TIMEOUT_S)
    expected = reference(model, images)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected, atol=1e-5)
    assert [c.decode() for c in tf.make_ndarray(response.outputs["classes"])] == \
        [CLASSES[i] for i in expected.argmax(1)]
    assert response.model_spec.name == "demo" and response.model_spec.version.value == 1


def test_grpc_predict_images_signature_with_version_and_output_filter(server, model) -> None:
    images, _ = make_images(2, seed=12)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "demo"
    request.model_spec.version.value = 1
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images.astype(np.float32)))
    request.output_filter.append("probabilities")
    with _channel(server) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=TIMEOUT_S)
    assert list(response.outputs) == ["probabilities"]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), reference(model, images),
                               atol=1e-5)


def test_frame_clients_give_the_keras_models_top_class(server, model) -> None:
    images, _ = make_images(3, seed=14)
    expected = reference(model, images)
    clients = {1: GrpcFrameClient(f"127.0.0.1:{server.grpc_port}", "demo", version=1, timeout_s=TIMEOUT_S),
               0: RestFrameClient(f"127.0.0.1:{server.rest_port}", "demo", timeout_s=TIMEOUT_S)}
    for version, client in clients.items():
        for image, probabilities in zip(images, expected):
            label, probability, got_version = client.classify(png(image))
            assert (label, got_version) == (CLASSES[probabilities.argmax()], version)
            assert probability == pytest.approx(probabilities.max(), abs=1e-5)
        client.close()


def test_grpc_frame_client_reads_scores_in_either_encoding() -> None:
    # This server sends raw tensor_content; TF Serving sends a one-element tensor in float_val.
    assert _first_float(tf.make_tensor_proto(np.float32([0.25, 0.5]))) == 0.25
    assert _first_float(tf.make_tensor_proto(np.float32([0.75]))) == 0.75
    with pytest.raises(ClassifyError, match="DT_DOUBLE"):
        _first_float(tf.make_tensor_proto(np.float64([0.5])))


def test_grpc_metadata_status_and_health(server) -> None:
    with _channel(server) as channel:
        meta_req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        meta_req.model_spec.name = "demo"
        meta = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(meta_req, timeout=TIMEOUT_S)
        defs = get_model_metadata_pb2.SignatureDefMap()
        meta.metadata["signature_def"].Unpack(defs)
        assert set(defs.signature_def) == {"serving_default", "predict_images"}
        assert set(defs.signature_def["serving_default"].outputs) == {"probabilities", "classes", "scores"}
        status_req = get_model_status_pb2.GetModelStatusRequest()
        status_req.model_spec.name = "demo"
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_req, timeout=TIMEOUT_S)
        assert [(s.version, s.state) for s in status.model_version_status] == \
            [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="tensorflow.serving.PredictionService"), timeout=TIMEOUT_S)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_rest_predict_rows_and_columns_equal_keras_model(server, model) -> None:
    images, _ = make_images(3, seed=13)
    expected = reference(model, images)
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/demo"
    b64 = [{"b64": base64.b64encode(png(i)).decode()} for i in images]
    rows = requests.post(f"{url}:predict", json={"instances": b64}, timeout=TIMEOUT_S)
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected, atol=1e-5)
    assert [p["classes"] for p in predictions] == [CLASSES[i] for i in expected.argmax(1)]
    columns = requests.post(f"{url}/versions/1:predict", timeout=TIMEOUT_S, json={
        "signature_name": "predict_images", "inputs": {"images": images.tolist()}})
    assert columns.status_code == 200, columns.text
    np.testing.assert_allclose(columns.json()["outputs"]["probabilities"], expected, atol=1e-5)


# The answers of TF Serving's REST API as its documentation shows them (tensorflow/serving,
# api_rest.md), as templates: "*" stands for any key of a map (model, signature or tensor names),
# ... for any value (the model's outputs).
_DIM = {"size": "-1", "name": ""}
_TENSOR = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [_DIM], "unknown_rank": False}, "name": "x:0"}
TF_SERVING = {
    "status": {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]},
    "metadata": {"model_spec": {"name": "m", "signature_name": "", "version": "1"},
                 "metadata": {"signature_def": {"signature_def": {"*": {
                     "inputs": {"*": _TENSOR}, "outputs": {"*": _TENSOR},
                     "method_name": "tensorflow/serving/predict"}}}}},
    "predict_rows": {"predictions": [{"*": ...}]},
    "predict_columns": {"outputs": {"*": ...}},
    "error": {"error": "message"},
}


def _conforms(actual: object, example: object, path: str = "$") -> None:
    """``actual`` has every key of ``example`` with a value of the same JSON type, recursively."""
    if example is ...:
        return
    if isinstance(example, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        if set(example) == {"*"}:
            assert actual, f"{path}: empty"
            for key, value in actual.items():
                _conforms(value, example["*"], f"{path}.{key}")
            return
        for key, value in example.items():
            assert key in actual, f"{path}: no {key!r} (has {sorted(actual)})"
            _conforms(actual[key], value, f"{path}.{key}")
    elif isinstance(example, list):
        assert isinstance(actual, list) and actual, f"{path}: {actual!r} is not a non-empty list"
        if example:
            for i, item in enumerate(actual):
                _conforms(item, example[0], f"{path}[{i}]")
    else:
        assert type(actual) is type(example), f"{path}: {actual!r} is not a {type(example).__name__}"


def test_every_rest_answer_has_tf_servings_shape(server) -> None:
    """A client written for TF Serving reads our answers (``signature_def``, ``tensor_shape``...)."""
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/demo"
    image = {"b64": base64.b64encode(png(make_images(1, seed=3)[0][0])).decode()}
    answers = {
        "status": requests.get(url, timeout=TIMEOUT_S),
        "metadata": requests.get(f"{url}/versions/1/metadata", timeout=TIMEOUT_S),
        "predict_rows": requests.post(f"{url}:predict", json={"instances": [image]}, timeout=TIMEOUT_S),
        "predict_columns": requests.post(f"{url}:predict", json={"inputs": [image]}, timeout=TIMEOUT_S),
        "error": requests.post(f"{url}:predict", json={"instances": []}, timeout=TIMEOUT_S),
    }
    for kind, answer in answers.items():
        _conforms(answer.json(), TF_SERVING[kind], kind)
    assert answers["status"].json()["model_version_status"][0]["state"] == "AVAILABLE"
    meta = answers["metadata"].json()
    assert meta["model_spec"] == {"name": "demo", "signature_name": "", "version": "1"}
    default = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert default["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert default["inputs"]["image_bytes"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert set(meta["metadata"]["signature_def"]["signature_def"]) == {"serving_default", "predict_images"}
    assert "signatureDef" not in json.dumps(meta) and "tensorShape" not in json.dumps(meta)


def test_metrics_report_latency_errors_and_loaded_versions(server) -> None:
    requests.post(f"http://127.0.0.1:{server.rest_port}/v1/models/nope:predict", json={"instances": [1]},
                  timeout=TIMEOUT_S)
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=TIMEOUT_S).text
    assert 'saga_serving_loaded_versions{model="demo"} 1.0' in text
    assert 'saga_serving_errors_total{api="rest_predict",code="NOT_FOUND"}' in text
    assert 'saga_serving_request_seconds_count{api="rest_status",model="demo",version="1"}' in text
