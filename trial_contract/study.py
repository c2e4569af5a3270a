"""The study spec: every field, its default (the thesis's, chapter 3) and its bounds.

:func:`parse_study` takes the spec as a client sends it and returns it complete, or raises a
:class:`~trial_contract.errors.ContractError` naming the field and, where it can, the fix. The
optimizer stores the complete spec, so a study never depends on defaults that change later.
"""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from .base import VERSION, Strict
from .errors import ContractError, from_validation_error
from .limits import (MAX_ATTEMPTS, MAX_BACKBONE_OPTIONS, MAX_DEPTH, MAX_EPOCHS, MAX_FAILED_TRIALS, MAX_IMAGE_SIZE,
                     MAX_INITIAL_POINTS, MAX_LEASE_SECONDS, MAX_NAME, MAX_PARALLEL_TRIALS, MAX_SEED, MAX_SPEC_BYTES,
                     MAX_TRIALS_PER_PHASE, depth)
from .metrics import EPOCH_METRICS, OBJECTIVE_METRICS, Goal
from .recipe import Recipe
from .registry import ALGORITHMS, BACKBONES, did_you_mean, unknown_name
from .space import parse_custom_space, parse_space
from .uris import check_store_uri, is_s3

STRATEGIES = ("shared", "separate", "separate_steps", "joint", "random")
PHASES: dict[str, tuple[str, ...]] = {
    "shared": ("search", "layer"),
    "separate": ("search", "layer"),
    "separate_steps": ("head", "finetune", "layer"),
    "joint": ("search",),
    "random": ("search",),
}
RESERVED_OPTIONS = ("weights", "include_top", "input_shape", "input_tensor", "pooling", "classes",
                    "classifier_activation")
WEIGHT_FILE_SUFFIXES = (".weights.h5", ".keras")


def check_weights(v: str | None) -> str | None:
    """``"imagenet"``, None (random initialization) or the store URI of a weights file."""
    if v is None or v == "imagenet":
        return v
    check_store_uri(v, "a weights URI")
    if not v.endswith(WEIGHT_FILE_SUFFIXES):
        raise ValueError(f"'imagenet', null, or the URI of a weights file ending in "
                         f"{' or '.join(WEIGHT_FILE_SUFFIXES)}, got {v!r}")
    return v


def check_options(v: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of the backbone's Keras constructor: scalars, none that Saga sets itself."""
    if len(v) > MAX_BACKBONE_OPTIONS:
        raise ValueError(f"at most {MAX_BACKBONE_OPTIONS} options")
    for key, value in v.items():
        if not key.isidentifier():
            raise ValueError(f"{key!r} is not an argument name")
        if key in RESERVED_OPTIONS:
            raise ValueError(f"{key}: set by Saga ({', '.join(RESERVED_OPTIONS)} are not options)")
        ok = value is None or isinstance(value, (bool, int, str)) or (
            isinstance(value, float) and value == value and abs(value) != float("inf"))
        if not ok or (isinstance(value, str) and len(value) > MAX_NAME):
            raise ValueError(f"{key}: must be a number, a short string, true/false or null, got {value!r}")
    return v


class DatasetSection(Strict):
    uri: str
    train: str = Field("train", min_length=1, max_length=MAX_NAME)
    validation: str = Field("validation", min_length=1, max_length=MAX_NAME)
    test: str | None = Field("test", min_length=1, max_length=MAX_NAME)  # null: no held-out test split
    # The sha256 of the manifest the study runs on; the optimizer pins it when it can read the store.
    manifest_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    _uri = field_validator("uri")(lambda v: check_store_uri(v, "the dataset URI"))


# "transfer": Saga's trainers build and train the image classifier. "custom": the user's own code
# trains any model through the Python API's ask/tell (saga.sdk); the search space is only what the
# spec gives, in one phase ("joint" GP or "random"), and only a client asking for the study by its id
# leases its trials, so trainer workers never receive them.
FAMILIES = ("transfer", "custom")
CUSTOM_STRATEGIES = ("joint", "random")
CUSTOM_DEFAULT_EPOCHS = 100


class ModelSection(Strict):
    family: Literal[FAMILIES] = "transfer"
    weights: str | None = "imagenet"
    image_size: int = Field(299, ge=1, le=MAX_IMAGE_SIZE)
    pooling: Literal["max", "avg"] = "max"
    options: dict[str, Any] = Field(default_factory=dict)

    _weights = field_validator("weights")(check_weights)
    _options = field_validator("options")(check_options)


class ObjectiveSection(Strict):
    metric: str = "val_accuracy"
    goal: Goal | None = None   # None: the metric's own direction (accuracy up, loss down)


class BudgetSection(Strict):
    trials_per_phase: Any = 20   # an integer for every phase, or {phase or "default": trials}
    initial_points: int = Field(5, ge=1, le=MAX_INITIAL_POINTS)
    parallel_trials: int = Field(4, ge=1, le=MAX_PARALLEL_TRIALS)
    max_attempts: int = Field(3, ge=1, le=MAX_ATTEMPTS)
    # Consecutive failed trials after which the study ends with the last reason (0: never).
    max_failed_trials: int = Field(3, ge=0, le=MAX_FAILED_TRIALS)
    # The proposal engine: Saga's GP (default), the thesis's GPyOpt GP + EI, or random search.
    algorithm: Literal[ALGORITHMS] = "gp"


class NonconvergenceSection(Strict):
    enabled: bool = True
    metric: str = "val_accuracy"
    threshold: float = 0.5
    epochs: int = Field(5, ge=1, le=MAX_EPOCHS)   # Listing 3.1's patience: epochs allowed under the threshold


class EarlyStoppingSection(Strict):
    enabled: bool = True
    metric: str = "val_accuracy"
    patience: int = Field(5, ge=1, le=MAX_EPOCHS)
    min_delta: float = Field(0.0, ge=0.0)


class StoppingSection(Strict):
    nonconvergence: NonconvergenceSection = NonconvergenceSection()
    early_stopping: EarlyStoppingSection = EarlyStoppingSection()


class TrainingSection(Recipe):
    head_epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    finetune_epochs: int = Field(50, ge=1, le=MAX_EPOCHS)
    default_delimiting_depth: float = Field(2 / 3, ge=0.0, le=1.0)
    epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS)   # a custom model's epochs per trial

    def recipe(self) -> dict[str, Any]:
        """The fields a task's ``training`` carries."""
        return self.model_dump(mode="json", include=set(Recipe.model_fields))


class LeaseSection(Strict):
    timeout_seconds: float = Field(600, ge=1, le=MAX_LEASE_SECONDS)


# A Kubernetes namespace's shape: lower-case letters, digits and '-'.
PROJECT_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class StudySpec(Strict):
    version: int = Field(VERSION, ge=1, le=VERSION)
    name: str = Field("study", min_length=1, max_length=MAX_NAME)
    # The tenant the study belongs to: tokens limited to projects see and change only their
    # projects' studies, and a projects file confines its URIs (optimizer_svc.projects).
    project: str = Field("default", pattern=PROJECT_NAME)
    dataset: DatasetSection | None = None   # required for the transfer family
    model: ModelSection = ModelSection()
    strategy: Literal["shared", "separate", "separate_steps", "joint", "random"] = "shared"
    search_space: dict[str, Any] = Field(default_factory=dict)
    objective: ObjectiveSection = ObjectiveSection()
    budget: BudgetSection = BudgetSection()
    stopping: StoppingSection = StoppingSection()
    training: TrainingSection = TrainingSection()
    lease: LeaseSection = LeaseSection()
    # Where trials write artifacts; null: under each trainer's --store.
    artifacts_uri: str | None = None
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @property
    def goal(self) -> Goal:
        return self.objective.goal or OBJECTIVE_METRICS[self.objective.metric]

    def trials_for(self, phase: str) -> int:
        tpp = self.budget.trials_per_phase
        return tpp if isinstance(tpp, int) else tpp.get(phase, tpp.get("default", 20))

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def parse_study(spec: str | bytes | dict[str, Any]) -> StudySpec:
    """The complete, checked spec; :class:`ContractError` naming the first field that is wrong."""
    if isinstance(spec, (str, bytes)):
        if len(spec) > MAX_SPEC_BYTES:
            raise ContractError("spec", f"larger than {MAX_SPEC_BYTES} bytes")
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise ContractError("spec", f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        except RecursionError:
            raise ContractError("spec", f"nested deeper than {MAX_DEPTH} levels") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise ContractError("spec", f"not valid JSON ({e})") from None
    if not isinstance(spec, dict):
        raise ContractError("spec", "must be a mapping")
    if depth(spec) > MAX_DEPTH:
        raise ContractError("spec", f"nested deeper than {MAX_DEPTH} levels")
    custom = isinstance(spec.get("model"), dict) and spec["model"].get("family") == "custom"
    if custom:
        spec = {"strategy": "joint", **spec}
    elif not isinstance(spec.get("dataset"), dict) or "uri" not in spec["dataset"]:
        raise ContractError("dataset.uri", "required: the dataset's s3://bucket/prefix or local directory "
                                           "(made by saga data upload)")
    try:
        model = StudySpec.model_validate(spec)
    except ValidationError as exc:
        raise _with_hint(from_validation_error(exc)) from None
    return _complete_custom(model) if custom else _complete(model)


def _complete_custom(s: StudySpec) -> StudySpec:
    """A custom model's spec: its own parameters and metric names, one phase, epochs per trial."""
    if s.strategy not in CUSTOM_STRATEGIES:
        raise ContractError("strategy", f"a custom model is searched in one phase: {list(CUSTOM_STRATEGIES)}, "
                                        f"got {s.strategy!r}")
    if not isinstance(s.search_space, dict):
        raise ContractError("search_space", "must be a mapping of parameter name to definition")
    space = parse_custom_space(s.search_space)
    metric = s.objective.metric
    if not metric or len(metric) > MAX_NAME:
        raise ContractError("objective.metric", f"must be a metric name of at most {MAX_NAME} characters")
    goal = s.objective.goal or OBJECTIVE_METRICS.get(metric)
    if goal is None:
        raise ContractError("objective.goal", f"required for the metric {metric!r}: 'maximize' or 'minimize'")
    _check_trials(s.budget.trials_per_phase, s.strategy)
    training = s.training.model_copy(update={"epochs": s.training.epochs or CUSTOM_DEFAULT_EPOCHS})
    return s.model_copy(update={"search_space": space, "training": training,
                                "objective": ObjectiveSection(metric=metric, goal=goal)})


def _with_hint(err: ContractError) -> ContractError:
    """Unknown fields name the known ones, with the closest as a suggestion."""
    if err.message.startswith("unknown field"):
        *parents, leaf = err.field.split(".")
        section: Any = StudySpec
        for p in parents:
            info = section.model_fields.get(p) if hasattr(section, "model_fields") else None
            section = info.annotation if info is not None else None
        if hasattr(section, "model_fields"):
            known = list(section.model_fields)
            return ContractError(err.field, f"unknown field{did_you_mean(leaf, known)}; known: {', '.join(known)}")
    return err


def _complete(s: StudySpec) -> StudySpec:
    """Checks across fields and sections; fills the search space and the objective's goal."""
    d = s.dataset
    if d is None:
        raise ContractError("dataset.uri", "required: the dataset's s3://bucket/prefix or local directory "
                                           "(made by saga data upload)")
    if s.training.epochs is not None:
        raise ContractError("training.epochs", "only for model.family custom; a transfer study's trials "
                                               "train head_epochs, then finetune_epochs")
    if d.validation == d.train:
        raise ContractError("dataset.validation", "must differ from the train split")
    if d.test is not None and d.test in (d.train, d.validation):
        raise ContractError("dataset.test", "must differ from the train and validation splits (or be null)")
    if s.name != s.name.strip():
        raise ContractError("name", "must not start or end with spaces")
    if s.artifacts_uri is not None:
        try:
            check_store_uri(s.artifacts_uri, "artifacts_uri")
        except ValueError as e:
            raise ContractError("artifacts_uri", str(e)) from None
        _same_store(s.artifacts_uri, d.uri)
    if not isinstance(s.search_space, dict):
        raise ContractError("search_space", "must be a mapping of parameter name to definition")
    space = parse_space(s.search_space, s.strategy)
    for i, backbone in enumerate(space["backbone"]["values"]):
        low = BACKBONES[backbone].min_size
        if s.model.image_size < low:
            raise ContractError("model.image_size", f"{s.model.image_size} px is below the smallest input of "
                                f"{backbone} ({low} px; search_space.backbone.values[{i}])")
    metric = s.objective.metric
    if metric not in OBJECTIVE_METRICS:
        raise ContractError("objective.metric", unknown_name("objective metric", metric, OBJECTIVE_METRICS)
                            + " (trainers report these after every epoch)")
    natural = OBJECTIVE_METRICS[metric]
    if s.objective.goal is not None and s.objective.goal != natural:
        raise ContractError("objective.goal", f"{metric} is to be {natural}d, not {s.objective.goal}d")
    for where, section in (("stopping.nonconvergence", s.stopping.nonconvergence),
                           ("stopping.early_stopping", s.stopping.early_stopping)):
        if section.metric not in EPOCH_METRICS:
            raise ContractError(f"{where}.metric", unknown_name("metric", section.metric, EPOCH_METRICS))
    _check_trials(s.budget.trials_per_phase, s.strategy)
    _check_from_scratch(s.model.weights, s.strategy)
    return s.model_copy(update={"search_space": space,
                                "objective": ObjectiveSection(metric=metric, goal=natural)})


# Strategies whose last phase searches the delimiting layer.
LAYER_PHASE_STRATEGIES = ("shared", "separate", "separate_steps")


def _check_from_scratch(weights: str | None, strategy: str) -> None:
    """Without weights the trainer trains every layer: no layer stays frozen at its random
    initialization, so there is no delimiting layer for a layer phase to search."""
    if weights is None and strategy in LAYER_PHASE_STRATEGIES:
        raise ContractError("model.weights", f"null trains every layer from scratch, so the {strategy!r} "
                            "strategy's delimiting-layer phase has nothing to search; use strategy 'joint' or "
                            "'random', or pre-trained weights (saga weights pretrain / saga weights upload)")


def _check_trials(tpp: Any, strategy: str) -> None:
    where = "budget.trials_per_phase"
    phases = PHASES[strategy]
    items = tpp.items() if isinstance(tpp, dict) else [(None, tpp)]
    for key, v in items:
        at = where if key is None else f"{where}.{key}"
        if key is not None and key != "default" and key not in phases:
            raise ContractError(at, f"unknown phase{did_you_mean(key, phases)}; the {strategy} strategy's "
                                    f"phases are {', '.join(phases)} (or 'default')")
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_TRIALS_PER_PHASE:
            raise ContractError(at, f"must be an integer in [1, {MAX_TRIALS_PER_PHASE}]"
                                    + (" or a mapping phase -> trials" if key is None else "") + f", got {v!r}")


def _same_store(artifacts: str, dataset: str) -> None:
    """Artifacts in S3 when the dataset is, on the shared file system when it is there.

    A relative artifacts path is resolved under each trainer's ``--store``, which is always allowed.
    """
    relative = "://" not in artifacts and not artifacts.startswith("/")
    if relative or is_s3(artifacts) == is_s3(dataset):
        return
    here, there = ("S3", "a local directory") if is_s3(dataset) else ("a local directory", "S3")
    raise ContractError("artifacts_uri", f"the dataset is in {here} but the artifacts would go to {there}; "
                                         "keep a study's artifacts in the store its dataset is in")
