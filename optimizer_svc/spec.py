"""The study spec: parsing, validation and the seed's defaults.

A spec arrives as JSON (the CLI converts YAML). ``parse_spec`` fills every default (thesis chapter 3:
the nine backbones, seven optimizers, learning rate in [1e-4, 1], 5 random initial points, GP + EI,
nonconvergence at 0.5 within 5 epochs, early stopping after 5 epochs without improvement, head step
at most 10 epochs, fine-tuning at most 50 from 2/3 of the model) and refuses anything that cannot run
with an InvalidArgument naming the field. ``StudySpec.to_json`` gives the complete spec back, which is
what the service stores, so a study never depends on defaults that change later.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidArgument
from .space import CategoricalParam, FloatParam, IntParam, Param, parse_param

STRATEGIES = ("shared", "separate", "separate_steps", "joint", "random")
# "transfer": Saga's trainers build and train the image classifier. "custom": the user's own code
# trains any model through the Python API's ask/tell (saga.sdk); the search space is only what the
# spec gives, one phase ("joint" GP or "random"), and only a client asking for the study by its id
# leases its trials, so trainer workers never receive them.
FAMILIES = ("transfer", "custom")
CUSTOM_STRATEGIES = ("joint", "random")
CUSTOM_DEFAULT_EPOCHS = 100
SEED_BACKBONES = ("Xception", "VGG16", "VGG19", "ResNet50", "InceptionV3", "InceptionResNetV2",
                  "DenseNet121", "DenseNet169", "DenseNet201")
SEED_OPTIMIZERS = ("SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "Adamax", "Nadam")
ROLE_PARAMS = ("backbone", "optimizer", "learning_rate", "delimiting_layer")
MAX_SPEC_BYTES = 256 * 1024


@dataclass(frozen=True)
class LayerSpace:
    """The delimiting layer: an absolute index in the base model, or a relative depth in [0, 1]."""
    type: str = "absolute"       # "absolute" or "relative"
    low: float = 0
    high: float | None = None    # absolute: None = the backbone's number of layers - 1


@dataclass(frozen=True)
class Budget:
    trials_per_phase: dict[str, int] = field(default_factory=dict)  # phase name -> trials
    default_trials: int = 20   # the thesis: 5 initial random points + 15 GP iterations per step
    initial_points: int = 5
    parallel_trials: int = 4
    max_attempts: int = 3

    def trials_for(self, phase: str) -> int:
        return self.trials_per_phase.get(phase, self.default_trials)


@dataclass(frozen=True)
class Stopping:
    nonconvergence: bool = True
    nonconvergence_metric: str = "val_accuracy"
    nonconvergence_threshold: float = 0.5
    nonconvergence_epochs: int = 5
    early_stopping: bool = True
    early_stopping_metric: str = "val_accuracy"
    early_stopping_patience: int = 5
    early_stopping_min_delta: float = 0.0


@dataclass(frozen=True)
class StudySpec:
    name: str
    dataset: dict[str, str]
    model: dict[str, Any]
    strategy: str
    params: dict[str, Param]         # the search space by parameter name (roles and extras)
    layer: LayerSpace
    objective_metric: str
    maximize: bool
    budget: Budget
    stopping: Stopping
    training: dict[str, Any]
    seed: int
    lease_seconds: float
    raw: dict[str, Any]              # the complete spec, defaults filled in

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)

    @property
    def custom(self) -> bool:
        return self.model.get("family") == "custom"

    @property
    def extras(self) -> list[Param]:
        return [p for n, p in self.params.items() if n not in ROLE_PARAMS]


def _defaults() -> dict[str, Any]:
    return {
        "name": "study",
        "dataset": {"uri": None, "train": "train", "validation": "validation", "test": "test"},
        "model": {"family": "transfer", "weights": "imagenet", "image_size": 299, "pooling": "max", "options": {}},
        "strategy": "shared",
        "search_space": {
            "backbone": {"type": "categorical", "values": list(SEED_BACKBONES)},
            "optimizer": {"type": "categorical", "values": list(SEED_OPTIMIZERS)},
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "linear"},
            "delimiting_layer": {"type": "absolute", "low": 0, "high": None},
        },
        "objective": {"metric": "val_accuracy", "goal": "maximize"},
        "budget": {"trials_per_phase": 20, "initial_points": 5, "parallel_trials": 4, "max_attempts": 3},
        "stopping": {
            "nonconvergence": {"enabled": True, "metric": "val_accuracy", "threshold": 0.5, "epochs": 5},
            "early_stopping": {"enabled": True, "metric": "val_accuracy", "patience": 5, "min_delta": 0.0},
        },
        "training": {"head_epochs": 10, "finetune_epochs": 50, "default_delimiting_depth": 2 / 3,
                     "batch_size": 16, "augmentation": {"horizontal_flip": True, "vertical_flip": True}},
        "lease": {"timeout_seconds": 600},
        "artifacts_uri": None,   # None: under each worker's --store, at studies/<study>/trials/<trial>
        "seed": 0,
    }


def _merge(defaults: dict, given: dict, where: str, open_keys: bool = False) -> dict:
    """Overlays ``given`` on ``defaults``; unknown keys are an error unless the section is open."""
    out = dict(defaults)
    for key, value in given.items():
        path = f"{where}.{key}" if where else key
        if key not in defaults and not open_keys:
            raise InvalidArgument(f"{path}: unknown field (known: {sorted(defaults)})")
        if isinstance(defaults.get(key), dict) and isinstance(value, dict) and key != "search_space":
            out[key] = _merge(defaults[key], value, path, open_keys=open_keys or key in ("training", "options"))
        else:
            out[key] = value
    return out


def parse_spec(spec: str | dict[str, Any]) -> StudySpec:
    """Validates a spec (JSON text or mapping) and returns it with every default filled in."""
    if isinstance(spec, str):
        if len(spec.encode()) > MAX_SPEC_BYTES:
            raise InvalidArgument(f"spec: larger than {MAX_SPEC_BYTES} bytes")
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"spec: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(spec, dict):
        raise InvalidArgument("spec: must be a mapping")
    raw = _merge(_defaults(), spec, "")
    # search_space: defaults per role, replaced (not merged) per parameter the user gives.
    given_space = spec.get("search_space", {})
    if not isinstance(given_space, dict):
        raise InvalidArgument("search_space: must be a mapping of parameter name to definition")
    raw["search_space"] = {**_defaults()["search_space"], **given_space}
    custom = isinstance(raw["model"], dict) and raw["model"].get("family") == "custom"
    if custom:
        raw["search_space"] = dict(given_space)  # no roles: the user's model has its own parameters
        raw["strategy"] = spec.get("strategy", "joint")

    name = raw["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidArgument("name: must be a non-empty string of at most 200 characters")
    dataset = _section(raw, "dataset")
    uri = dataset.get("uri")
    if not (custom and uri is None) and (not isinstance(uri, str) or not uri.strip()):
        raise InvalidArgument("dataset.uri: required (s3://bucket/prefix or a local directory)")
    for key in ("train", "validation", "test"):
        if not isinstance(dataset[key], (str, type(None))):
            raise InvalidArgument(f"dataset.{key}: must be a split name")
    if not dataset["train"] or not dataset["validation"]:
        raise InvalidArgument("dataset: train and validation splits are required")
    model = _section(raw, "model")
    if model["family"] not in FAMILIES:
        raise InvalidArgument(f"model.family: must be one of {list(FAMILIES)}, got {model['family']!r}")
    if model["weights"] is not None and not (isinstance(model["weights"], str) and model["weights"]):
        raise InvalidArgument("model.weights: 'imagenet', null, or the URI of a weights file")
    _int_at_least(model, "image_size", 16, "model")
    if model["pooling"] not in ("max", "avg"):
        raise InvalidArgument("model.pooling: must be 'max' (the seed's) or 'avg'")
    if not isinstance(model["options"], dict):
        raise InvalidArgument("model.options: must be a mapping of backbone constructor arguments, e.g. {alpha: 0.35}")
    artifacts = raw["artifacts_uri"]
    if artifacts is not None and (not isinstance(artifacts, str) or not artifacts.strip()):
        raise InvalidArgument("artifacts_uri: a store URI (s3://bucket/prefix or a directory), or null")
    strategy = raw["strategy"]
    if strategy not in STRATEGIES:
        raise InvalidArgument(f"strategy: must be one of {list(STRATEGIES)}, got {strategy!r}")
    if custom:
        params, layer = _parse_custom_space(raw["search_space"], strategy)
    else:
        params, layer = _parse_space(raw["search_space"], strategy, "delimiting_layer" in given_space)
        raw["search_space"]["delimiting_layer"] = {"type": layer.type, "low": layer.low, "high": layer.high}
    objective = _section(raw, "objective")
    if not isinstance(objective["metric"], str) or not objective["metric"]:
        raise InvalidArgument("objective.metric: must be a metric name such as 'val_accuracy'")
    if objective["goal"] not in ("maximize", "minimize"):
        raise InvalidArgument("objective.goal: must be 'maximize' or 'minimize'")
    budget = _parse_budget(_section(raw, "budget"), strategy)
    stopping = _parse_stopping(_section(raw, "stopping"))
    training = _section(raw, "training")
    _int_at_least(training, "head_epochs", 1, "training")
    _int_at_least(training, "finetune_epochs", 1, "training")
    _int_at_least(training, "batch_size", 1, "training")
    if custom:
        training.setdefault("epochs", CUSTOM_DEFAULT_EPOCHS)
        _int_at_least(training, "epochs", 1, "training")
    depth = training["default_delimiting_depth"]
    if isinstance(depth, bool) or not isinstance(depth, (int, float)) or not 0 <= depth <= 1:
        raise InvalidArgument("training.default_delimiting_depth: must be a number in [0, 1]")
    lease = _section(raw, "lease")
    lease_s = lease["timeout_seconds"]
    if isinstance(lease_s, bool) or not isinstance(lease_s, (int, float)) or not 1 <= lease_s <= 86400:
        raise InvalidArgument("lease.timeout_seconds: must be a number of seconds in [1, 86400]")
    seed = raw["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InvalidArgument("seed: must be an integer in [0, 2^32)")
    return StudySpec(name=name, dataset=dataset, model=model, strategy=strategy, params=params,
                     layer=layer, objective_metric=objective["metric"],
                     maximize=objective["goal"] == "maximize", budget=budget, stopping=stopping,
                     training=training, seed=seed, lease_seconds=float(lease_s), raw=raw)


def _section(raw: dict, key: str) -> dict:
    if not isinstance(raw[key], dict):
        raise InvalidArgument(f"{key}: must be a mapping")
    return raw[key]


def _int_at_least(d: dict, key: str, low: int, where: str) -> int:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise InvalidArgument(f"{where}.{key}: must be an integer >= {low}, got {v!r}")
    return v


def _parse_custom_space(space: dict, strategy: str) -> tuple[dict[str, Param], LayerSpace]:
    if strategy not in CUSTOM_STRATEGIES:
        raise InvalidArgument(f"strategy: a custom model is searched in one phase: {list(CUSTOM_STRATEGIES)}, "
                              f"got {strategy!r}")
    if not space:
        raise InvalidArgument("search_space: a custom model needs at least one parameter")
    params: dict[str, Param] = {}
    for name, definition in space.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgument(f"search_space.{name}: parameter names must be identifiers")
        params[name] = parse_param(name, definition, f"search_space.{name}")
    return params, LayerSpace("relative", 0.0, 1.0)  # no delimiting layer; unused


def _parse_space(space: dict, strategy: str, user_given: bool) -> tuple[dict[str, Param], LayerSpace]:
    params: dict[str, Param] = {}
    for name, definition in space.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgument(f"search_space.{name}: parameter names must be identifiers")
        if name == "delimiting_layer":
            continue
        params[name] = parse_param(name, definition, f"search_space.{name}")
    for role in ("backbone", "optimizer"):
        if not isinstance(params[role], CategoricalParam):
            raise InvalidArgument(f"search_space.{role}: must be categorical")
    lr = params["learning_rate"]
    if not isinstance(lr, FloatParam) or lr.low <= 0:
        raise InvalidArgument("search_space.learning_rate: must be a float parameter with low > 0")
    raw_layer = space["delimiting_layer"]
    where = "search_space.delimiting_layer"
    if not isinstance(raw_layer, dict) or raw_layer.get("type") not in ("absolute", "relative"):
        raise InvalidArgument(f"{where}.type: must be 'absolute' (layer index) or 'relative' (depth in [0, 1])")
    if set(raw_layer) - {"type", "low", "high"}:
        raise InvalidArgument(f"{where}: unknown field(s) {sorted(set(raw_layer) - {'type', 'low', 'high'})}")
    kind = raw_layer["type"]
    low = raw_layer.get("low", 0)
    high = raw_layer.get("high", None if kind == "absolute" else 1.0)
    for key, v in (("low", low), ("high", high)):
        if v is None and key == "high":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InvalidArgument(f"{where}.{key}: must be a number >= 0, got {v!r}")
        if kind == "absolute" and not float(v).is_integer():
            raise InvalidArgument(f"{where}.{key}: an absolute layer index must be an integer, got {v!r}")
        if kind == "relative" and v > 1:
            raise InvalidArgument(f"{where}.{key}: a relative depth must be in [0, 1], got {v!r}")
    if high is not None and not low < high:
        raise InvalidArgument(f"{where}: low ({low}) must be below high ({high})")
    if strategy in ("joint", "random") and kind == "absolute":
        if user_given:
            raise InvalidArgument(f"{where}.type: the {strategy} strategy searches the delimiting layer as a "
                                  "relative depth in [0, 1] (the backbone varies, so an absolute index "
                                  "means a different layer in each model)")
        kind, low, high = "relative", 0.0, 1.0
    layer = LayerSpace(kind, float(low) if kind == "relative" else int(low),
                       None if high is None else (float(high) if kind == "relative" else int(high)))
    return params, layer


def layer_param(layer: LayerSpace, last_layer: int | None) -> Param | None:
    """The delimiting-layer parameter of a layer phase, or None when its bound is unknown.

    ``last_layer`` is the index of the backbone's last layer (its layer count minus one), the bound
    when the spec gives none.
    """
    if layer.type == "relative":
        return FloatParam("delimiting_layer", float(layer.low), float(layer.high if layer.high is not None else 1.0))
    high = layer.high
    if high is None:
        if not last_layer or last_layer < 1:
            return None
        high = last_layer
    return IntParam("delimiting_layer", int(layer.low), int(max(high, layer.low + 1)))


def _parse_budget(b: dict, strategy: str) -> Budget:
    per_phase = b["trials_per_phase"]
    default = 20
    mapping: dict[str, int] = {}
    if isinstance(per_phase, dict):
        for k, v in per_phase.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArgument(f"budget.trials_per_phase.{k}: must be an integer >= 1, got {v!r}")
            mapping[str(k)] = v
        default = mapping.pop("default", default)
    elif isinstance(per_phase, bool) or not isinstance(per_phase, int) or per_phase < 1:
        raise InvalidArgument(f"budget.trials_per_phase: must be an integer >= 1 or a mapping phase -> trials, got {per_phase!r}")
    else:
        default = per_phase
    init = _int_at_least(b, "initial_points", 1, "budget")
    par = _int_at_least(b, "parallel_trials", 1, "budget")
    att = _int_at_least(b, "max_attempts", 1, "budget")
    if par > 256:
        raise InvalidArgument("budget.parallel_trials: at most 256")
    return Budget(trials_per_phase=mapping, default_trials=default, initial_points=init,
                  parallel_trials=par, max_attempts=att)


def _parse_stopping(s: dict) -> Stopping:
    nc, es = s["nonconvergence"], s["early_stopping"]
    if not isinstance(nc, dict) or not isinstance(es, dict):
        raise InvalidArgument("stopping: nonconvergence and early_stopping must be mappings")
    for where, d in (("stopping.nonconvergence", nc), ("stopping.early_stopping", es)):
        if not isinstance(d["enabled"], bool):
            raise InvalidArgument(f"{where}.enabled: must be true or false")
        if not isinstance(d["metric"], str) or not d["metric"]:
            raise InvalidArgument(f"{where}.metric: must be a metric name")
    thr = nc["threshold"]
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not math.isfinite(thr):
        raise InvalidArgument("stopping.nonconvergence.threshold: must be a finite number")
    _int_at_least(nc, "epochs", 1, "stopping.nonconvergence")
    _int_at_least(es, "patience", 1, "stopping.early_stopping")
    md = es["min_delta"]
    if isinstance(md, bool) or not isinstance(md, (int, float)) or not math.isfinite(md) or md < 0:
        raise InvalidArgument("stopping.early_stopping.min_delta: must be a number >= 0")
    return Stopping(nc["enabled"], nc["metric"], float(thr), nc["epochs"],
                    es["enabled"], es["metric"], es["patience"], float(md))
