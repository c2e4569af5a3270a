"""A new version exported while a client sends frames: no request fails, answers switch to it."""
from __future__ import annotations

import threading
import time

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.helpers import build_model, export, make_images, png, start_server


def test_new_version_swaps_in_without_failing_a_request(tmp_path) -> None:
    export(build_model(seed=2), tmp_path)
    server = start_server(tmp_path, batching=True)
    frame = png(make_images(1, seed=9)[0][0])
    versions: list[int] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def client() -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "demo"
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([frame]))
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                try:
                    versions.append(stub.Predict(request, timeout=10).model_spec.version.value)
                except grpc.RpcError as exc:
                    errors.append(exc)
                time.sleep(0.02)  # a camera-like frame stream, not a load test

    thread = threading.Thread(target=client)
    try:
        thread.start()
        time.sleep(0.5)
        assert export(build_model(seed=3), tmp_path).version == 2
        deadline = time.monotonic() + 60
        while (not versions or versions[-1] != 2) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
        server.stop()
    assert errors == []
    assert versions[0] == 1 and versions[-1] == 2
    switch = versions.index(2)
    assert set(versions[:switch]) == {1} and set(versions[switch:]) == {2}  # never back to the old one


def test_every_model_exported_to_the_base_is_served(model, tmp_path) -> None:
    """`saga up` serves the models exported to its base, not only the one it was started with."""
    server = start_server(tmp_path, all_models=True)  # nothing exported yet, not even "demo"
    try:
        export(model, tmp_path, name="polyps")
        deadline = time.monotonic() + 60
        while not _served(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        statuses = server.registry.status("polyps")
        assert [s.state for s in statuses] == ["AVAILABLE"]
    finally:
        server.stop()


def _served(server) -> bool:
    try:
        return bool(server.registry.get("polyps"))
    except Exception:  # noqa: BLE001 - not there yet
        return False
