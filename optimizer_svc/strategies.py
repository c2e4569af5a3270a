"""Strategies as sequences of phases, and the trial task each phase hands to workers.

| strategy         | phases                      |
|------------------|-----------------------------|
| shared           | search, layer               |
| separate         | search, layer               |
| separate_steps   | head, finetune, layer       |
| joint            | search (delimiting depth included) |
| random           | search (random proposals)   |

A phase's context (parameters fixed from earlier phases, the checkpoint to start from, the
delimiting-layer bound) is computed once when the phase starts, from the best trial of the phase
before, and stored with the phase so that a restart sees the same phase.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from trial_contract import PHASES, TUNABLES, VERSION, TrialTask

from .space import FloatParam, Param
from .spec import StudySpec, layer_param


@dataclass(frozen=True)
class PriorTrial:
    """What a phase needs to know of the best trial of the phase before it."""
    trial_id: str
    parameters: dict[str, Any]
    artifacts: dict[str, str]
    metrics: dict[str, float]
    start_from: dict[str, Any] | None


@dataclass(frozen=True)
class PhaseContext:
    fixed: dict[str, Any]                 # parameters carried over from earlier phases
    start_from: dict[str, Any] | None     # {"trial_id", "artifact", "uri"} or None
    layer_high: int | None = None         # absolute delimiting-layer bound learnt from a trial
    note: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PhaseContext":
        return cls(**json.loads(text))


def phase_names(spec: StudySpec) -> tuple[str, ...]:
    return PHASES[spec.strategy]


def uses_random_proposals(spec: StudySpec) -> bool:
    return spec.strategy == "random"


def _renamed(p: Param, name: str) -> Param:
    return dataclasses.replace(p, name=name)


def phase_params(spec: StudySpec, phase: str, ctx: PhaseContext) -> list[Param]:
    """The parameters a phase searches over."""
    P = spec.params
    if spec.custom:
        return list(P.values())
    if phase == "layer":
        lp = layer_param(spec.layer, ctx.layer_high)
        # Without a known bound the layer phase falls back to a relative depth.
        return [lp if lp is not None else FloatParam("delimiting_layer", 0.0, 1.0)]
    if phase == "finetune":
        return [_renamed(P["optimizer"], "finetune_optimizer"), _renamed(P["learning_rate"], "finetune_learning_rate")]
    base: list[Param] = [P["backbone"]]
    if spec.strategy == "separate":
        base += [_renamed(P["optimizer"], "head_optimizer"), _renamed(P["learning_rate"], "head_learning_rate"),
                 _renamed(P["optimizer"], "finetune_optimizer"), _renamed(P["learning_rate"], "finetune_learning_rate")]
    elif phase == "head":
        base += [_renamed(P["optimizer"], "head_optimizer"), _renamed(P["learning_rate"], "head_learning_rate")]
    else:
        base += [P["optimizer"], P["learning_rate"]]
    if spec.strategy in ("joint", "random"):
        base.append(layer_param(spec.layer, None) or FloatParam("delimiting_layer", 0.0, 1.0))
    return base + spec.extras


def phase_context(spec: StudySpec, phase: str, prior: PriorTrial | None) -> PhaseContext:
    """The context of a phase that starts after ``prior`` (the best trial of the phase before)."""
    if prior is None:
        return PhaseContext(fixed={}, start_from=None)
    fixed = {k: v for k, v in prior.parameters.items() if k != "delimiting_layer"}
    # Start from the head checkpoint of the prior trial, or the one the prior trial itself started
    # from (a fine-tune-only trial has no head checkpoint of its own).
    start_from = prior.start_from
    if "head_checkpoint" in prior.artifacts:
        start_from = {"trial_id": prior.trial_id, "artifact": "head_checkpoint",
                      "uri": prior.artifacts["head_checkpoint"]}
    layer_high = None
    note = ""
    if phase == "layer" and spec.layer.type == "absolute" and spec.layer.high is None:
        base_layers = prior.metrics.get("base_layers")
        if base_layers and base_layers >= 2:
            layer_high = int(base_layers) - 1
        else:
            note = "the best trial reported no base_layers: the layer phase searches a relative depth"
    return PhaseContext(fixed=fixed, start_from=start_from, layer_high=layer_high, note=note)


def build_task(spec: StudySpec, *, study_id: str, trial_id: str, attempt: int, phase_index: int,
               phase: str, ctx: PhaseContext, parameters: dict[str, Any], artifacts_uri: str) -> dict[str, Any]:
    """The task a worker runs for one trial (schema: trial_contract.task, docs/TRIAL_TASK.md).

    Built through the contract's own model, so a task the optimizer hands out is one a trainer
    accepts. The scored step (``objective.step``) is the head step in ``separate_steps``' head
    phase and the fine-tuning step everywhere else (thesis 3.4.7).
    """
    p = {**ctx.fixed, **parameters}
    tr = spec.training
    if spec.custom:
        return _custom_task(spec, study_id=study_id, trial_id=trial_id, attempt=attempt, phase_index=phase_index,
                            phase=phase, parameters=p, artifacts_uri=artifacts_uri)
    recipe = spec.contract.training.recipe()
    for name, tunable in TUNABLES.items():
        if name in p:
            tunable.apply(recipe, p[name])
    head = {"name": "head", "optimizer": p.get("head_optimizer", p.get("optimizer")),
            "learning_rate": p.get("head_learning_rate", p.get("learning_rate")),
            "max_epochs": tr["head_epochs"]}
    if "delimiting_layer" in p:
        is_index = isinstance(p["delimiting_layer"], int) and not isinstance(p["delimiting_layer"], bool)
        delimiting = {"index": p["delimiting_layer"]} if is_index else {"relative": float(p["delimiting_layer"])}
    else:
        delimiting = {"relative": tr["default_delimiting_depth"]}
    finetune = {"name": "finetune", "optimizer": p.get("finetune_optimizer", p.get("optimizer")),
                "learning_rate": p.get("finetune_learning_rate", p.get("learning_rate")),
                "max_epochs": tr["finetune_epochs"], "delimiting_layer": delimiting}
    start_from = ctx.start_from if phase in ("finetune", "layer") else None
    if phase == "head":
        steps = [head]
    elif start_from is not None:
        steps = [finetune]
    else:
        steps = [head, finetune]
    task = TrialTask.model_validate({
        "version": VERSION,
        "study_id": study_id, "trial_id": trial_id, "attempt": attempt,
        "phase": {"index": phase_index, "name": phase},
        "dataset": dict(spec.dataset),
        "model": {**spec.model, "backbone": p["backbone"]},
        "steps": steps,
        "start_from": start_from,
        "training": recipe,
        "objective": {"metric": spec.objective_metric, "goal": "maximize" if spec.maximize else "minimize",
                      "step": steps[-1]["name"]},
        "seed": spec.seed,
        "artifacts_uri": artifacts_uri,
    })
    return task.model_dump(mode="json")


def _custom_task(spec: StudySpec, *, study_id: str, trial_id: str, attempt: int, phase_index: int, phase: str,
                 parameters: dict[str, Any], artifacts_uri: str) -> dict[str, Any]:
    """A custom model's trial: its parameters and one training step; the user's code does the rest."""
    return {
        "study_id": study_id, "trial_id": trial_id, "attempt": attempt,
        "phase": {"index": phase_index, "name": phase},
        "dataset": dict(spec.dataset),
        "model": dict(spec.model),
        "steps": [{"name": "train", "max_epochs": spec.training["epochs"]}],
        "start_from": None,
        "training": dict(spec.training),
        "hyperparameters": dict(parameters),
        "objective": {"metric": spec.objective_metric, "goal": "maximize" if spec.maximize else "minimize"},
        "seed": spec.seed,
        "artifacts_uri": artifacts_uri,
    }
