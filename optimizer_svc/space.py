"""Search-space parameters: parsing from a spec, random sampling, and the unit-cube encoding.

The unit-cube encoding is what proposers work in: every parameter maps to one coordinate in [0, 1]
(log-scaled floats in log space), so "near-same point" has one meaning for every parameter type.
A categorical with k choices and an integer with k values split [0, 1] into k equal-width buckets
(Keras Tuner's ``prob_to_index``): a value encodes to its bucket's centre and every bucket decodes to
its value, so a uniform draw in [0, 1] gives each choice probability 1/k (random sampling, the
initial design and every GP decoding alike).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from .errors import InvalidArgument

Value = Union[float, int, str]


def bucket_index(u: float, k: int) -> int:
    """Which of ``k`` equal-width buckets of [0, 1] holds ``u`` (1.0 belongs to the last one)."""
    return min(int(min(max(u, 0.0), 1.0) * k), k - 1)


def bucket_centre(i: int, k: int) -> float:
    return (i + 0.5) / k


@dataclass(frozen=True)
class FloatParam:
    name: str
    low: float
    high: float
    scale: str = "linear"  # or "log"

    def to_unit(self, v: Value) -> float:
        lo, hi, x = self._t(self.low), self._t(self.high), self._t(float(v))
        return 0.0 if hi == lo else (x - lo) / (hi - lo)

    def from_unit(self, u: float) -> float:
        lo, hi = self._t(self.low), self._t(self.high)
        x = lo + min(max(u, 0.0), 1.0) * (hi - lo)
        return float(min(max(10.0 ** x if self.scale == "log" else x, self.low), self.high))

    def _t(self, v: float) -> float:
        return math.log10(v) if self.scale == "log" else v


@dataclass(frozen=True)
class IntParam:
    name: str
    low: int
    high: int

    def to_unit(self, v: Value) -> float:
        return bucket_centre(int(v) - self.low, self.high - self.low + 1)

    def from_unit(self, u: float) -> int:
        return self.low + bucket_index(u, self.high - self.low + 1)


@dataclass(frozen=True)
class CategoricalParam:
    name: str
    values: tuple[str, ...]

    def to_unit(self, v: Value) -> float:
        return bucket_centre(self.values.index(str(v)), len(self.values))

    def from_unit(self, u: float) -> str:
        return self.values[bucket_index(u, len(self.values))]


Param = Union[FloatParam, IntParam, CategoricalParam]


def parse_param(name: str, raw: Any, where: str) -> Param:
    """Builds a parameter from its spec mapping; ``where`` is the field path used in errors."""
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: must be a mapping with a 'type'")
    kind = raw.get("type")
    extra = set(raw) - {"type", "low", "high", "scale", "values"}
    if extra:
        raise InvalidArgument(f"{where}: unknown field(s) {sorted(extra)}")
    if kind == "float":
        low, high = _number(raw, "low", where), _number(raw, "high", where)
        scale = raw.get("scale", "linear")
        if scale not in ("linear", "log"):
            raise InvalidArgument(f"{where}.scale: must be 'linear' or 'log', got {scale!r}")
        if not low < high:
            raise InvalidArgument(f"{where}: low ({low}) must be below high ({high})")
        if scale == "log" and low <= 0:
            raise InvalidArgument(f"{where}.low: must be > 0 for a log scale, got {low}")
        return FloatParam(name, float(low), float(high), scale)
    if kind == "int":
        low, high = _integer(raw, "low", where), _integer(raw, "high", where)
        if not low <= high:
            raise InvalidArgument(f"{where}: low ({low}) must not exceed high ({high})")
        return IntParam(name, low, high)
    if kind == "categorical":
        values = raw.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise InvalidArgument(f"{where}.values: must be a non-empty list of non-empty strings")
        if len(set(values)) != len(values):
            raise InvalidArgument(f"{where}.values: must not repeat a value")
        return CategoricalParam(name, tuple(values))
    raise InvalidArgument(f"{where}.type: must be 'float', 'int' or 'categorical', got {kind!r}")


def _number(raw: dict, key: str, where: str) -> float:
    v = raw.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InvalidArgument(f"{where}.{key}: must be a finite number, got {v!r}")
    return float(v)


def _integer(raw: dict, key: str, where: str) -> int:
    v = raw.get(key)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidArgument(f"{where}.{key}: must be an integer, got {v!r}")
    return v


def to_spec(p: Param) -> dict[str, Any]:
    """The spec mapping of ``p`` with its name: what :func:`parse_param` reads back."""
    if isinstance(p, FloatParam):
        return {"name": p.name, "type": "float", "low": p.low, "high": p.high, "scale": p.scale}
    if isinstance(p, IntParam):
        return {"name": p.name, "type": "int", "low": p.low, "high": p.high}
    return {"name": p.name, "type": "categorical", "values": list(p.values)}


def sample(params: list[Param], rng: np.random.Generator) -> dict[str, Value]:
    """A uniformly random point (uniform in log space for log-scaled floats)."""
    return {p.name: p.from_unit(float(rng.random())) for p in params}


def encode(params: list[Param], point: dict[str, Value]) -> np.ndarray:
    """The point in the unit cube, one coordinate per parameter."""
    return np.array([p.to_unit(point[p.name]) for p in params], dtype=float)


def decode(params: list[Param], u: np.ndarray) -> dict[str, Value]:
    return {p.name: p.from_unit(float(x)) for p, x in zip(params, u)}



def encode_many(params: list[Param], points: list[dict[str, Value]]) -> np.ndarray:
    """:func:`encode` of many points at once, one row each (a column at a time, for speed)."""
    columns = []
    for p in params:
        raw = [point[p.name] for point in points]
        if isinstance(p, CategoricalParam):
            index = {v: i for i, v in enumerate(p.values)}
            columns.append((np.array([index[str(v)] for v in raw], dtype=float) + 0.5) / len(p.values))
        elif isinstance(p, IntParam):
            columns.append((np.array(raw, dtype=float) - p.low + 0.5) / (p.high - p.low + 1))
        else:
            x, lo, hi = np.array(raw, dtype=float), p.low, p.high
            if p.scale == "log":
                x, lo, hi = np.log10(x), math.log10(lo), math.log10(hi)
            columns.append(np.zeros(len(raw)) if hi == lo else (x - lo) / (hi - lo))
    return np.stack(columns, axis=1) if columns else np.zeros((len(points), 0))
