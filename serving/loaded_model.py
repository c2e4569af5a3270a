"""One loaded version of an exported model: its signatures, input checks and the model call."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from serving.errors import InvalidInput, ServingError
from serving.layout import CARD

DEFAULT_SIGNATURE = "serving_default"
# TF's internal signature; TF Serving does not offer it to clients either.
_HIDDEN_SIGNATURES = ("__saved_model_init_op",)


@dataclass(frozen=True)
class Signature:
    """A callable signature with its declared inputs and outputs."""

    name: str
    fn: Any  # a ConcreteFunction
    inputs: dict[str, tf.TensorSpec]
    outputs: dict[str, tf.TensorSpec]


@dataclass
class LoadedVersion:
    """A SavedModel version ready to serve."""

    name: str
    version: int
    path: Path
    signatures: dict[str, Signature]
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]
    card: dict[str, Any] = field(default_factory=dict)
    _keep: Any = None  # the loaded object; its variables live as long as this

    def signature(self, name: str | None) -> Signature:
        """The named signature (``serving_default`` when empty); InvalidInput when unknown."""
        key = name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise InvalidInput(f"signature {key!r} not found in model {self.name} version "
                               f"{self.version}; it has {sorted(self.signatures)}")
        return self.signatures[key]

    def check_inputs(self, signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs, cast to the declared dtypes; InvalidInput naming what is wrong."""
        missing = sorted(set(signature.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(signature.inputs))
        if missing or extra:
            raise InvalidInput(f"signature {signature.name!r} takes inputs {sorted(signature.inputs)}; "
                               f"missing {missing}, unexpected {extra}")
        checked: dict[str, np.ndarray] = {}
        sizes = set()
        for key, spec in signature.inputs.items():
            value = _as_dtype(key, np.asarray(inputs[key]), spec.dtype)
            if not spec.shape.is_compatible_with(value.shape):
                raise InvalidInput(f"input {key!r} must have shape {_shape_text(spec.shape)}, "
                                   f"got {list(value.shape)}")
            if value.ndim == 0 or value.shape[0] == 0:
                raise InvalidInput(f"input {key!r} holds no examples (shape {list(value.shape)})")
            sizes.add(value.shape[0])
            checked[key] = value
        if len(sizes) > 1:
            raise InvalidInput(f"inputs have different batch sizes {sorted(sizes)}")
        return checked

    def run(self, signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calls the model on checked inputs; a bad example (e.g. undecodable bytes) is InvalidInput."""
        try:
            result = signature.fn(**{k: tf.constant(v, dtype=signature.inputs[k].dtype)
                                     for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as exc:
            raise InvalidInput(_tf_message(exc)) from exc
        except tf.errors.OpError as exc:
            raise ServingError(_tf_message(exc)) from exc
        return {k: v.numpy() for k, v in result.items()}


def load_version(name: str, version: int, path: Path) -> LoadedVersion:
    """Loads a SavedModel directory; raises whatever TF raises for a broken one."""
    loaded = tf.saved_model.load(str(path))
    signatures = {
        key: Signature(key, fn, dict(fn.structured_input_signature[1]), dict(fn.structured_outputs))
        for key, fn in loaded.signatures.items()}
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    defs = {k: v for k, v in proto.meta_graphs[0].signature_def.items() if k not in _HIDDEN_SIGNATURES}
    card_path = path / CARD
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return LoadedVersion(name, version, path, signatures, defs, card, loaded)


def warm_up(model: LoadedVersion) -> None:
    """Calls every signature once on a tiny example, so the first request is not slow and a
    version that cannot predict is never swapped in."""
    png = tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy()
    for signature in model.signatures.values():
        inputs = {}
        for key, spec in signature.inputs.items():
            shape = [1] + [d if d is not None else 8 for d in spec.shape.as_list()[1:]]
            inputs[key] = (np.full(shape, png, dtype=object) if spec.dtype == tf.string
                           else np.zeros(shape, spec.dtype.as_numpy_dtype))
        model.run(signature, inputs)


def _as_dtype(key: str, value: np.ndarray, dtype: tf.DType) -> np.ndarray:
    if dtype == tf.string:
        if value.dtype.kind not in "OSU":
            raise InvalidInput(f"input {key!r} must be string (bytes), got {value.dtype}")
        if value.dtype.kind == "O" and not all(isinstance(v, (bytes, str)) for v in value.flat):
            raise InvalidInput(f"input {key!r} must hold bytes, got other objects")
        return value
    target = np.dtype(dtype.as_numpy_dtype)
    if value.dtype.kind not in "biuf" or not np.can_cast(value.dtype, target, "same_kind"):
        raise InvalidInput(f"input {key!r} must be {dtype.name}, got {value.dtype}")
    return value.astype(target, copy=False)


def _shape_text(shape: tf.TensorShape) -> str:
    return "[" + ", ".join("N" if i == 0 and d is None else "?" if d is None else str(d)
                           for i, d in enumerate(shape.as_list())) + "]"


def _tf_message(exc: tf.errors.OpError) -> str:
    # Keep TF's first sentence; drop graph internals such as {{function_node ...}} and [[node ...]].
    text = re.sub(r"\{\{[^}]*\}\}", "", exc.message or str(exc)).split("\n")[0].strip()
    return text or type(exc).__name__
