"""TF Serving's REST JSON format <-> numpy arrays.

Requests hold ``instances`` (row format: one entry per example, an object per example when the
signature has several inputs) or ``inputs`` (columnar: one array per input, or one bare value for
a single input). Binary values are ``{"b64": "..."}``. Responses mirror the request: ``predictions``
for rows, ``outputs`` for columns. See https://www.tensorflow.org/tfx/serving/api_rest.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from serving.errors import InvalidInput

# A batch of images as nested lists is 5 levels deep; anything near this is an attack, not a request.
MAX_JSON_DEPTH = 32


def load_json(data: bytes) -> Any:
    """A request body as JSON; InvalidInput for malformed JSON, NaN/Infinity literals (not JSON,
    though Python's parser accepts them) and nesting deeper than :data:`MAX_JSON_DEPTH`."""
    def refuse(literal: str) -> Any:
        raise InvalidInput(f"the request holds {literal}, which is not JSON; send finite numbers")

    try:
        body = json.loads(data, parse_constant=refuse)
    except RecursionError:
        raise InvalidInput(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the request body is not JSON: {exc}") from exc
    if _depth(body) > MAX_JSON_DEPTH:
        raise InvalidInput(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels")
    return body


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            if deepest > MAX_JSON_DEPTH:
                break
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_predict(body: Any, input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], bool]:
    """The request's inputs by name and whether it used the row (``instances``) format."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    if ("instances" in body) == ("inputs" in body):
        raise InvalidInput("the request must hold exactly one of 'instances' or 'inputs'")
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise InvalidInput("'instances' must be a non-empty list")
        if all(isinstance(r, dict) and "b64" not in r for r in rows):
            names = set(rows[0])
            if any(set(r) != names for r in rows):
                raise InvalidInput("every instance must name the same inputs")
            return {k: _array(k, [r[k] for r in rows]) for k in names}, True
        return {_only(input_names): _array(_only(input_names), rows)}, True
    columns = body["inputs"]
    if isinstance(columns, dict) and "b64" not in columns:
        return {k: _array(k, v) for k, v in columns.items()}, False
    return {_only(input_names): _array(_only(input_names), columns)}, False


def format_predict(outputs: Mapping[str, np.ndarray], rows: bool) -> dict[str, Any]:
    """The response body for ``outputs`` in the request's format."""
    values = {k: _json_value(k, v.tolist()) for k, v in outputs.items()}
    if rows:
        if len(values) == 1:
            return {"predictions": next(iter(values.values()))}
        n = len(next(iter(values.values())))
        return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(n)]}
    return {"outputs": next(iter(values.values())) if len(values) == 1 else values}


def _only(input_names: Sequence[str]) -> str:
    if len(input_names) != 1:
        raise InvalidInput(f"the signature has inputs {sorted(input_names)}: name them in each instance")
    return input_names[0]


def _array(key: str, value: Any) -> np.ndarray:
    decoded = _decode(key, value)
    try:
        if _has_bytes(decoded):
            array = np.empty(_shape(decoded), dtype=object)  # object: 'S' arrays drop trailing NULs
            array[...] = decoded
            return array
        return np.asarray(decoded)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input {key!r} is not a rectangular array: {exc}") from exc


def _decode(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise InvalidInput(f"input {key!r}: an object value must be {{\"b64\": \"...\"}}")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"input {key!r}: invalid base64: {exc}") from exc
    if isinstance(value, list):
        return [_decode(key, v) for v in value]
    if isinstance(value, str):
        return value.encode()  # TF Serving takes JSON strings as UTF-8 bytes
    if value is None:
        raise InvalidInput(f"input {key!r} holds null")
    return value


def _has_bytes(value: Any) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, bytes)


def _shape(value: Any) -> tuple[int, ...]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def _json_value(key: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(key, v) for v in value]
    if isinstance(value, bytes):
        if not key.endswith("_bytes"):
            try:
                return value.decode()
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode()}
    return value
