"""Predict, metadata and status: the transport-free core behind both the gRPC and the REST API."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serving.batching import BatchingQueue
from serving.errors import InvalidInput
from serving.input_limits import DEFAULT_MAX_IMAGE_PIXELS, check_values
from serving.loaded_model import LoadedVersion, Signature
from serving.registry import ModelRegistry, VersionStatus

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Prediction:
    """The outputs of one Predict call and the version that produced them."""

    model: str
    version: int
    signature: str
    outputs: dict[str, np.ndarray]


class Predictor:
    """Checks requests against the served signatures and runs them, batching when asked to."""

    def __init__(self, registry: ModelRegistry, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 batching: BatchingQueue | None = None,
                 max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        if max_payload_bytes < 1:
            raise ValueError(f"max_payload_bytes must be >= 1, got {max_payload_bytes}")
        if max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be >= 1, got {max_image_pixels}")
        self.max_image_pixels = max_image_pixels
        self.registry = registry
        self.max_payload_bytes = max_payload_bytes
        self.batching = batching

    def model(self, name: str, version: int | None = None) -> LoadedVersion:
        """The served version (newest when ``version`` is None); NotFound otherwise."""
        return self.registry.get(name, version)

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Version states of a model, newest first."""
        return self.registry.status(name, version)

    def signature(self, name: str, version: int | None, signature_name: str | None) -> tuple[LoadedVersion, Signature]:
        """The model version and one of its signatures; NotFound / InvalidInput."""
        model = self.model(name, version)
        return model, model.signature(signature_name)

    def predict(self, name: str, version: int | None, signature_name: str | None,
                inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()) -> Prediction:
        """Runs one request. Raises InvalidInput for a bad request, NotFound for a missing model."""
        self.check_payload_size(sum(_nbytes(v) for v in inputs.values()))
        model, signature = self.signature(name, version, signature_name)
        unknown = sorted(set(output_filter) - set(signature.outputs))
        if unknown:
            raise InvalidInput(f"output_filter names unknown outputs {unknown}; "
                               f"{signature.name!r} has {sorted(signature.outputs)}")
        checked = model.check_inputs(signature, inputs)
        check_values(checked, self.max_image_pixels)
        if self.batching is not None:
            outputs = self.batching.submit((model.name, model.version, signature.name),
                                           lambda x: model.run(signature, x), checked)
        else:
            outputs = model.run(signature, checked)
            self.registry.metrics.batch_size.labels(model.name).observe(len(next(iter(checked.values()))))
        if output_filter:
            outputs = {k: outputs[k] for k in output_filter}
        return Prediction(model.name, model.version, signature.name, outputs)

    def check_payload_size(self, size: int) -> None:
        """InvalidInput when a request body of ``size`` bytes exceeds the limit."""
        if size > self.max_payload_bytes:
            raise InvalidInput(f"request payload of {size} bytes exceeds the limit of "
                               f"{self.max_payload_bytes} bytes")


def _nbytes(value: np.ndarray) -> int:
    array = np.asarray(value)
    if array.dtype.kind == "O":
        return sum(len(v) if isinstance(v, (bytes, str)) else 8 for v in array.flat)
    return array.nbytes
