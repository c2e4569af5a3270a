"""The study spec as the optimizer works with it.

Validation and defaults belong to the trial contract (:mod:`trial_contract.study`, the thesis's
defaults: nine backbones, seven optimizers, learning rate in [1e-4, 1], 5 random initial points,
nonconvergence at 0.5 within 5 epochs, early stopping after 5 epochs without improvement, head step
at most 10 epochs, fine-tuning at most 50 from 2/3 of the model). ``parse_spec`` turns a contract
refusal into an InvalidArgument naming the field, and gives the optimizer its own view: search-space
parameters as :mod:`.space` objects, the budget and stopping rules as plain dataclasses.
``StudySpec.to_json`` gives the complete spec back, which is what the service stores, so a study
never depends on defaults that change later.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import trial_contract
import trial_contract.study
from trial_contract import ContractError, parse_study
from trial_contract.limits import MAX_SPEC_BYTES
from trial_contract.registry import SEED_BACKBONES, SEED_OPTIMIZERS
from trial_contract.space import ROLES

from .errors import InvalidArgument
from .space import FloatParam, IntParam, Param, parse_param

log = logging.getLogger(__name__)
STRATEGIES = trial_contract.STRATEGIES
ROLE_PARAMS = tuple(ROLES)
__all__ = ["MAX_SPEC_BYTES", "ROLE_PARAMS", "SEED_BACKBONES", "SEED_OPTIMIZERS", "STRATEGIES", "Budget",
           "LayerSpace", "Stopping", "StudySpec", "layer_param", "parse_spec", "parse_stored"]


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
    max_failed_trials: int = 3  # consecutive failures that end the study (0: never)
    algorithm: str = "gp"      # proposal engine: "gp" (Saga's), "gpyopt" (the thesis's), "random"

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
    project: str
    dataset: dict[str, Any]
    model: dict[str, Any]
    strategy: str
    params: dict[str, Param]         # the search space by parameter name (roles and tunables)
    layer: LayerSpace
    objective_metric: str
    maximize: bool
    budget: Budget
    stopping: Stopping
    training: dict[str, Any]
    seed: int
    lease_seconds: float
    raw: dict[str, Any]              # the complete spec, defaults filled in
    contract: trial_contract.StudySpec

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)

    @property
    def custom(self) -> bool:
        return self.model.get("family") == "custom"

    @property
    def extras(self) -> list[Param]:
        """The tunable parameters (trial_contract.recipe.TUNABLES) the space searches."""
        return [p for n, p in self.params.items() if n not in ROLE_PARAMS]


def parse_spec(spec: str | dict[str, Any]) -> StudySpec:
    """Validates a spec (JSON text or mapping) and returns it with every default filled in."""
    try:
        c = parse_study(spec)
    except ContractError as e:
        raise InvalidArgument(str(e)) from None
    return from_contract(c)


def parse_stored(spec_json: str) -> StudySpec:
    """A spec the optimizer stored. One stored before the trial contract may hold training fields or
    search-space parameters that no trainer ever read: they are dropped (and logged), so the study
    stays readable, instead of failing every read of it."""
    try:
        return parse_spec(spec_json)
    except InvalidArgument as refused:
        raw = json.loads(spec_json)
        known_training = set(trial_contract.study.TrainingSection.model_fields)
        if isinstance(raw.get("training"), dict):
            raw["training"] = {k: v for k, v in raw["training"].items() if k in known_training}
        if isinstance(raw.get("search_space"), dict):
            raw["search_space"] = {k: v for k, v in raw["search_space"].items()
                                   if k in ROLE_PARAMS or k in trial_contract.TUNABLES}
        try:
            spec = parse_spec(raw)
        except InvalidArgument:
            raise refused from None
        log.warning("stored spec of study %r predates the trial contract (%s): fields no trainer reads "
                    "were dropped", spec.name, refused)
        return spec


def from_contract(c: trial_contract.StudySpec) -> StudySpec:
    """The optimizer's view of a spec the contract accepted."""
    raw = c.model_dump(mode="json")
    space = raw["search_space"]
    params = {name: parse_param(name, d, f"search_space.{name}") for name, d in space.items()
              if name != "delimiting_layer"}
    lay = space.get("delimiting_layer") or {"type": "relative", "low": 0.0, "high": 1.0}  # custom: none, unused
    layer = LayerSpace(lay["type"], lay["low"], lay["high"])
    tpp = c.budget.trials_per_phase
    mapping = dict(tpp) if isinstance(tpp, dict) else {}
    default = mapping.pop("default", 20) if isinstance(tpp, dict) else tpp
    b = c.budget
    budget = Budget(trials_per_phase=mapping, default_trials=default, initial_points=b.initial_points,
                    parallel_trials=b.parallel_trials, max_attempts=b.max_attempts,
                    max_failed_trials=b.max_failed_trials, algorithm=b.algorithm)
    nc, es = c.stopping.nonconvergence, c.stopping.early_stopping
    stopping = Stopping(nc.enabled, nc.metric, nc.threshold, nc.epochs,
                        es.enabled, es.metric, es.patience, es.min_delta)
    return StudySpec(name=c.name, project=c.project, dataset=raw["dataset"] or {}, model=raw["model"],
                     strategy=c.strategy,
                     params=params, layer=layer, objective_metric=c.objective.metric,
                     maximize=c.goal == "maximize", budget=budget, stopping=stopping,
                     training=raw["training"], seed=c.seed, lease_seconds=float(c.lease.timeout_seconds),
                     raw=raw, contract=c)


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
