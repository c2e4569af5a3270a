"""TF Serving's gRPC API over the predictor core: PredictionService (Predict, GetModelMetadata)
and ModelService (GetModelStatus), built on the tensorflow-serving-api messages and bases.

The servicers only convert messages; errors are translated once, in :func:`_call`.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving.errors import InvalidInput, NotFound, ServingError
from serving.metrics import ServingMetrics
from serving.predictor import Predictor

log = logging.getLogger(__name__)
T = TypeVar("T")
_STATES = get_model_status_pb2.ModelVersionStatus.State


def _version(spec: model_pb2.ModelSpec) -> int | None:
    if spec.version_label:
        raise NotFound(f"version label {spec.version_label!r} is not defined; ask for a version number")
    return spec.version.value if spec.HasField("version") else None


def _call(metrics: ServingMetrics, api: str, context: grpc.ServicerContext, fn: Callable[[], tuple[T, str, int]]) -> T:
    """Runs ``fn`` (returning response, model, version), recording latency and mapping errors."""
    start = time.perf_counter()
    try:
        response, model, version = fn()
    except ServingError as exc:
        metrics.errors.labels(api, exc.code).inc()
        context.abort(grpc.StatusCode[exc.code], str(exc))
    except Exception as exc:  # noqa: BLE001 - never UNKNOWN: report INTERNAL with the reason
        log.exception("%s failed", api)
        metrics.errors.labels(api, "INTERNAL").inc()
        context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
    metrics.latency.labels(api, model, str(version)).observe(time.perf_counter() - start)
    return response


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata."""

    def __init__(self, predictor: Predictor, metrics: ServingMetrics) -> None:
        self.predictor = predictor
        self.metrics = metrics

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext) -> predict_pb2.PredictResponse:
        def run() -> tuple[predict_pb2.PredictResponse, str, int]:
            spec = request.model_spec
            inputs = {key: _to_array(key, proto) for key, proto in request.inputs.items()}
            result = self.predictor.predict(spec.name, _version(spec), spec.signature_name, inputs,
                                            list(request.output_filter))
            response = predict_pb2.PredictResponse()
            _fill_spec(response.model_spec, result.model, result.version, result.signature)
            for key, value in result.outputs.items():
                _fill_tensor(response.outputs[key], value)
            return response, result.model, result.version
        return _call(self.metrics, "grpc_predict", context, run)

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                         context: grpc.ServicerContext) -> get_model_metadata_pb2.GetModelMetadataResponse:
        def run() -> tuple[get_model_metadata_pb2.GetModelMetadataResponse, str, int]:
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise InvalidInput(f"metadata_field must be ['signature_def'], got {fields}")
            model = self.predictor.model(request.model_spec.name, _version(request.model_spec))
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            _fill_spec(response.model_spec, model.name, model.version, "")
            defs = get_model_metadata_pb2.SignatureDefMap()
            for key, value in model.signature_defs.items():
                defs.signature_def[key].CopyFrom(value)
            response.metadata["signature_def"].Pack(defs)
            return response, model.name, model.version
        return _call(self.metrics, "grpc_metadata", context, run)


class ModelStatusServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus (reloading config is not offered)."""

    def __init__(self, predictor: Predictor, metrics: ServingMetrics) -> None:
        self.predictor = predictor
        self.metrics = metrics

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest,
                       context: grpc.ServicerContext) -> get_model_status_pb2.GetModelStatusResponse:
        def run() -> tuple[get_model_status_pb2.GetModelStatusResponse, str, int]:
            name = request.model_spec.name
            statuses = self.predictor.status(name, _version(request.model_spec))
            response = get_model_status_pb2.GetModelStatusResponse()
            for status in statuses:
                entry = response.model_version_status.add(version=status.version,
                                                          state=_STATES.Value(status.state))
                entry.status.error_code = 0 if status.error_code == "OK" else 2  # tensorflow.error.Code
                entry.status.error_message = status.error_message
            return response, name, statuses[0].version if statuses else 0
        return _call(self.metrics, "grpc_status", context, run)


def _fill_spec(spec: model_pb2.ModelSpec, name: str, version: int, signature: str) -> None:
    spec.name = name
    spec.version.value = version
    if signature:
        spec.signature_name = signature


def _fill_tensor(proto: tensor_pb2.TensorProto, value: np.ndarray) -> None:
    """Writes ``value`` into ``proto``: strings in string_val, numbers as raw tensor_content (as
    ``tf.make_tensor_proto`` does for all but one-element arrays), at a fifth of its cost: this runs
    for every output of every request."""
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in value.shape)
    if value.dtype.kind in "OSU":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend([tf.compat.as_bytes(v) for v in value.flat])
    else:
        proto.dtype = tf.as_dtype(value.dtype).as_datatype_enum
        proto.tensor_content = value.tobytes()


def _to_array(key: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
    try:
        if proto.dtype == types_pb2.DT_STRING:  # encoded frames, one per element: skip the generic path
            shape = [d.size for d in proto.tensor_shape.dim]
            if len(proto.string_val) == math.prod(shape):
                return np.array(proto.string_val, dtype=object).reshape(shape)
        return tf.make_ndarray(proto)
    except Exception as exc:  # noqa: BLE001 - any malformed TensorProto is the client's error
        raise InvalidInput(f"input {key!r} is not a valid TensorProto: {exc}") from exc
