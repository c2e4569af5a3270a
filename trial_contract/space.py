"""Search-space definitions as a spec writes them, and what each parameter name means.

Names are roles (``backbone``, ``optimizer``, ``learning_rate``, ``delimiting_layer``) or tunables
(:data:`trial_contract.recipe.TUNABLES`); any other name is refused, since no trainer would read it.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from .base import Strict
from .errors import ContractError, from_validation_error
from .limits import MAX_CATEGORICAL_VALUES, MAX_LEARNING_RATE, MAX_NAME, MAX_SEARCH_PARAMETERS
from .recipe import TUNABLES
from .registry import BACKBONES, OPTIMIZERS, SEED_BACKBONES, SEED_OPTIMIZERS, did_you_mean, unknown_name

ROLES: dict[str, str] = {
    "backbone": "the keras.applications model under the new classification block",
    "optimizer": "the optimizer of the training steps (per step in `separate` and `separate_steps`)",
    "learning_rate": "the optimizer's learning rate (per step likewise)",
    "delimiting_layer": "the first trainable backbone layer of fine-tuning: an index, or a relative depth",
}
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "backbone": {"type": "categorical", "values": list(SEED_BACKBONES)},
    "optimizer": {"type": "categorical", "values": list(SEED_OPTIMIZERS)},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "linear"},
    "delimiting_layer": {"type": "absolute", "low": 0, "high": None},
}
MAX_LAYER_INDEX = 100_000


class FloatDef(Strict):
    type: Literal["float"]
    low: float
    high: float
    scale: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _order(self) -> "FloatDef":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"low: must be > 0 for a log scale, got {self.low}")
        return self


class IntDef(Strict):
    type: Literal["int"]
    low: int = Field(ge=-2**31, le=2**31)
    high: int = Field(ge=-2**31, le=2**31)

    @model_validator(mode="after")
    def _order(self) -> "IntDef":
        if not self.low <= self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class CategoricalDef(Strict):
    type: Literal["categorical"]
    values: list[str] = Field(min_length=1, max_length=MAX_CATEGORICAL_VALUES)

    @model_validator(mode="after")
    def _distinct(self) -> "CategoricalDef":
        if not all(v and len(v) <= MAX_NAME for v in self.values):
            raise ValueError(f"values: must be non-empty strings of at most {MAX_NAME} characters")
        if len(set(self.values)) != len(self.values):
            raise ValueError("values: must not repeat a value")
        return self


class LayerDef(Strict):
    """The delimiting layer's range: absolute layer indices, or a relative depth in [0, 1]."""

    type: Literal["absolute", "relative"] = "absolute"
    low: float = Field(0, ge=0, le=MAX_LAYER_INDEX)
    high: float | None = Field(None, ge=0, le=MAX_LAYER_INDEX)  # absolute: None = the backbone's last layer

    @model_validator(mode="after")
    def _range(self) -> "LayerDef":
        for key in ("low", "high"):
            v = getattr(self, key)
            if v is None:
                continue
            if self.type == "absolute" and not float(v).is_integer():
                raise ValueError(f"{key}: an absolute layer index must be an integer, got {v!r}")
            if self.type == "relative" and v > 1:
                raise ValueError(f"{key}: a relative depth must be in [0, 1], got {v!r}")
        if self.high is not None and not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    def normalized(self) -> dict[str, Any]:
        if self.type == "absolute":
            return {"type": "absolute", "low": int(self.low), "high": None if self.high is None else int(self.high)}
        return {"type": "relative", "low": float(self.low), "high": 1.0 if self.high is None else float(self.high)}


_KINDS = {"float": FloatDef, "int": IntDef, "categorical": CategoricalDef}


def parse_space(given: dict[str, Any], strategy: str) -> dict[str, dict[str, Any]]:
    """The complete search space (roles defaulted, every definition normalized); ContractError else.

    ``joint`` and ``random`` vary the backbone within one search, so their delimiting layer is a
    relative depth; an absolute range given for them is refused, the absolute default replaced.
    """
    space = {**DEFAULT_SPACE, **given}
    if len(space) > len(ROLES) + MAX_SEARCH_PARAMETERS:
        raise ContractError("search_space", f"at most {MAX_SEARCH_PARAMETERS} parameters besides the roles")
    out: dict[str, dict[str, Any]] = {}
    for name, raw in space.items():
        where = f"search_space.{name}"
        if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_NAME:
            raise ContractError(where, "parameter names must be identifiers")
        if name not in ROLES and name not in TUNABLES:
            raise ContractError(where, f"unknown parameter{did_you_mean(name, [*ROLES, *TUNABLES])}; a search "
                                       f"space holds the roles {', '.join(ROLES)} and the tunables "
                                       f"{', '.join(TUNABLES)} (docs/TRIAL_TASK.md says what each means)")
        if name == "delimiting_layer":
            layer = _validate(LayerDef, raw, where)
            if strategy in ("joint", "random") and layer.type == "absolute":
                if "delimiting_layer" in given:
                    raise ContractError(f"{where}.type", f"the {strategy} strategy searches the delimiting "
                                        "layer as a relative depth in [0, 1] (the backbone varies, so an "
                                        "absolute index means a different layer in each model)")
                layer = LayerDef(type="relative", low=0.0, high=1.0)
            out[name] = layer.normalized()
            continue
        if not isinstance(raw, dict) or raw.get("type") not in _KINDS:
            raise ContractError(f"{where}.type" if isinstance(raw, dict) else where,
                                "must be a mapping with type 'float', 'int' or 'categorical'")
        param = _validate(_KINDS[raw["type"]], raw, where)
        _check_meaning(name, param, where)
        out[name] = param.model_dump(mode="json")
    return out


def parse_custom_space(given: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A custom model's search space: the user's own parameters, whatever their names mean to the
    user's code (saga.sdk); no roles, at least one parameter."""
    if not given:
        raise ContractError("search_space", "a custom model needs at least one parameter")
    if len(given) > MAX_SEARCH_PARAMETERS:
        raise ContractError("search_space", f"at most {MAX_SEARCH_PARAMETERS} parameters")
    out: dict[str, dict[str, Any]] = {}
    for name, raw in given.items():
        where = f"search_space.{name}"
        if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_NAME:
            raise ContractError(where, "parameter names must be identifiers")
        if not isinstance(raw, dict) or raw.get("type") not in _KINDS:
            raise ContractError(f"{where}.type" if isinstance(raw, dict) else where,
                                "must be a mapping with type 'float', 'int' or 'categorical'")
        out[name] = _validate(_KINDS[raw["type"]], raw, where).model_dump(mode="json")
    return out


def _validate(model: type[Strict], raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ContractError(where, "must be a mapping")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=where) from None


def _check_meaning(name: str, p: FloatDef | IntDef | CategoricalDef, where: str) -> None:
    """What the parameter's name requires of its type and range."""
    if name in ("backbone", "optimizer"):
        if not isinstance(p, CategoricalDef):
            raise ContractError(where, "must be categorical")
        known = BACKBONES if name == "backbone" else OPTIMIZERS
        for i, v in enumerate(p.values):
            if v not in known:
                raise ContractError(f"{where}.values[{i}]", unknown_name(name, v, known))
        return
    if name == "learning_rate":
        if not isinstance(p, FloatDef) or p.low <= 0:
            raise ContractError(where, "must be a float parameter with low > 0")
        if p.high > MAX_LEARNING_RATE:
            raise ContractError(f"{where}.high", f"must be at most {MAX_LEARNING_RATE:g}, got {p.high:g}")
        return
    t = TUNABLES[name]
    if p.type not in t.types:
        raise ContractError(f"{where}.type", f"{name} is {' or '.join(t.types)} ({t.meaning}), got {p.type!r}")
    if isinstance(p, CategoricalDef):
        for i, v in enumerate(p.values):
            if v not in t.values:
                raise ContractError(f"{where}.values[{i}]", f"must be one of {', '.join(t.values)}, got {v!r}")
        return
    if t.low is not None and p.low < t.low:
        raise ContractError(f"{where}.low", f"{name} must be at least {t.low:g}, got {p.low:g}")
    if t.high is not None and p.high > t.high:
        raise ContractError(f"{where}.high", f"{name} must be at most {t.high:g}, got {p.high:g}")
