"""The optimizer and the trainer agree on the trial contract (property-based, hypothesis).

1. Every spec the optimizer accepts yields, in every phase, for any proposal and any prior trial,
   a task the trainer accepts.
2. Over the fields of a spec that reach a task (backbones, optimizers, learning rates, image size,
   epochs, batch size, tunables, objective, weights, dataset URI, backbone options), the optimizer
   refuses a spec exactly when the trainer would refuse a task carrying those values: nothing is
   accepted at creation that burns trials later, and nothing a trainer could run is refused.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from optimizer_svc.errors import InvalidArgument
from optimizer_svc.space import sample
from optimizer_svc.spec import StudySpec, parse_spec
from optimizer_svc.strategies import PHASES, PhaseContext, PriorTrial, build_task, phase_context, phase_params
from trainer_svc.errors import InvalidTask
from trainer_svc.task import parse_task
from trial_contract import BACKBONES, OBJECTIVE_METRICS, OPTIMIZERS, STRATEGIES, TUNABLES

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

backbones = st.lists(st.sampled_from([*BACKBONES, "MobilenetV2", "ResNet51", "resnet50"]),
                     min_size=1, max_size=3, unique=True)
optimizers = st.lists(st.sampled_from([*OPTIMIZERS, "adam", "LBFGS"]), min_size=1, max_size=3, unique=True)
learning_rates = st.tuples(st.sampled_from([-0.1, 0.0, 1e-6, 1e-4, 0.01]),
                           st.sampled_from([0.05, 1.0, 5.0, 20.0]))
sizes = st.one_of(st.integers(-5, 1100), st.sampled_from([31, 32, 70, 71, 74, 75, 299, 1024, 1025]))
epochs = st.one_of(st.integers(-1, 3), st.sampled_from([10, 1000, 1001, 10**12]))
batch = st.one_of(st.integers(-1, 64), st.sampled_from([4096, 4097, 2**70]))
metrics = st.sampled_from([*OBJECTIVE_METRICS, "val_acc", "accuracy", "loss"])
weights = st.sampled_from(["imagenet", None, "s3://saga/weights/w.keras", "/srv/w.weights.h5", "/srv/w.h5",
                           "ftp://host/w.keras", "s3://saga/../w.keras"])
datasets = st.sampled_from(["s3://saga/datasets/kvasir", "/data/kvasir", "datasets/kvasir", "../kvasir",
                            "ftp://host/kvasir", "s3://key:secret@saga/kvasir", "s3:///kvasir"])
options = st.sampled_from([{}, {"alpha": 0.35}, {"weights": None}, {"include_top": True}, {"x": [1]}])


@st.composite
def tunables(draw) -> dict[str, dict[str, Any]]:
    """Search-space definitions of tunables, within and beyond their bounds."""
    out = {}
    for name in draw(st.lists(st.sampled_from(list(TUNABLES)), max_size=3, unique=True)):
        t = TUNABLES[name]
        if t.values:
            out[name] = {"type": "categorical",
                         "values": draw(st.lists(st.sampled_from([*t.values, "maybe"]), min_size=1, max_size=2,
                                                 unique=True))}
            continue
        low = draw(st.sampled_from([t.low - 1, t.low, t.low + (t.high - t.low) / 4]))
        high = draw(st.sampled_from([t.high / 2, t.high, t.high + 1]))
        if t.types == ("int",):
            out[name] = {"type": "int", "low": int(low), "high": int(high)}
        else:
            out[name] = {"type": "float", "low": float(low), "high": float(high)}
    return out


@st.composite
def specs(draw) -> dict[str, Any]:
    lr_low, lr_high = draw(learning_rates)
    return {
        "dataset": {"uri": draw(datasets)},
        "strategy": draw(st.sampled_from(STRATEGIES)),
        "model": {"image_size": draw(sizes), "weights": draw(weights), "options": draw(options),
                  "pooling": draw(st.sampled_from(["max", "avg", "min"]))},
        "search_space": {"backbone": {"type": "categorical", "values": draw(backbones)},
                         "optimizer": {"type": "categorical", "values": draw(optimizers)},
                         "learning_rate": {"type": "float", "low": lr_low, "high": lr_high},
                         **draw(tunables())},
        "objective": {"metric": draw(metrics)},
        "training": {"head_epochs": draw(epochs), "finetune_epochs": draw(epochs), "batch_size": draw(batch)},
        "budget": {"trials_per_phase": 3},
    }


@st.composite
def valid_leaning_specs(draw) -> dict[str, Any]:
    """Specs built from values the contract allows, so that most are accepted."""
    spec = draw(specs())
    spec["dataset"]["uri"] = draw(st.sampled_from(["s3://saga/datasets/kvasir", "/data/kvasir", "datasets/k"]))
    spec["model"].update(image_size=draw(st.integers(75, 1024)), pooling=draw(st.sampled_from(["max", "avg"])),
                         weights=draw(st.sampled_from(["imagenet", None, "s3://saga/weights/w.keras"])),
                         options=draw(st.sampled_from([{}, {"alpha": 0.35}])))
    spec["search_space"]["backbone"]["values"] = draw(st.lists(st.sampled_from(list(BACKBONES)), min_size=1,
                                                               max_size=3, unique=True))
    spec["search_space"]["optimizer"]["values"] = draw(st.lists(st.sampled_from(OPTIMIZERS), min_size=1,
                                                                max_size=3, unique=True))
    low = draw(st.sampled_from([1e-5, 1e-4, 1e-3]))
    spec["search_space"]["learning_rate"] = {"type": "float", "low": low, "high": draw(st.sampled_from([0.01, 1.0])),
                                             "scale": draw(st.sampled_from(["linear", "log"]))}
    for name in [n for n in spec["search_space"] if n in TUNABLES]:
        t = TUNABLES[name]
        spec["search_space"][name] = (
            {"type": "categorical", "values": ["on", "off"]} if t.values else
            {"type": t.types[0], "low": t.low if t.types[0] == "float" else int(t.low),
             "high": t.high if t.types[0] == "float" else 64})
    spec["objective"]["metric"] = draw(st.sampled_from(list(OBJECTIVE_METRICS)))
    spec["training"] = {"head_epochs": draw(st.integers(1, 1000)), "finetune_epochs": draw(st.integers(1, 1000)),
                        "batch_size": draw(st.integers(1, 4096))}
    return spec


def accepted(spec: dict[str, Any]) -> StudySpec | None:
    try:
        return parse_spec(spec)
    except InvalidArgument:
        return None


def trainer_accepts(task: dict[str, Any]) -> bool:
    try:
        parse_task(task)
    except InvalidTask:
        return False
    return True


@SETTINGS
@given(spec=valid_leaning_specs(), seed=st.integers(0, 2**32 - 1), base_layers=st.integers(2, 900))
def test_every_accepted_spec_yields_tasks_the_trainer_accepts(spec, seed, base_layers) -> None:
    parsed = accepted(spec)
    assume(parsed is not None)
    rng = np.random.default_rng(seed)
    prior = None
    for index, phase in enumerate(PHASES[parsed.strategy]):
        ctx = phase_context(parsed, phase, prior)
        point = sample(phase_params(parsed, phase, ctx), rng)
        task = build_task(parsed, study_id="st-1", trial_id=f"st-1-{index:04d}", attempt=1, phase_index=index,
                          phase=phase, ctx=ctx, parameters=point, artifacts_uri="studies/st-1/trials/x")
        parsed_task = parse_task(task)  # raises, naming the field, if the trainer would refuse it
        assert parsed_task.model.image_size == parsed.model["image_size"]
        assert parsed_task.objective.step == task["steps"][-1]["name"]
        prior = PriorTrial(f"st-1-{index:04d}", {**ctx.fixed, **point},
                           {"head_checkpoint": "s3://saga/studies/st-1/trials/x/head.keras"},
                           {"base_layers": float(base_layers)}, ctx.start_from)


def direct_tasks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The tasks a spec's own values would make, unchecked: every backbone and optimizer it names,
    its learning-rate bounds, each tunable at its bounds (one value at a time)."""
    space = spec["search_space"]
    lr = space["learning_rate"]
    variants = [{}]
    for name, d in space.items():
        if name in TUNABLES:
            bounds = d["values"] if d["type"] == "categorical" else [d["low"], d["high"]]
            variants += [{name: v} for v in bounds]
    tasks = []
    for backbone, optimizer, rate, extra in itertools.chain(
            ((b, space["optimizer"]["values"][0], lr["low"], {}) for b in space["backbone"]["values"]),
            ((space["backbone"]["values"][0], o, r, {}) for o in space["optimizer"]["values"]
             for r in (lr["low"], lr["high"])),
            ((space["backbone"]["values"][0], space["optimizer"]["values"][0], lr["low"], v) for v in variants)):
        training = {"batch_size": spec["training"]["batch_size"],
                    "augmentation": {"horizontal_flip": True, "vertical_flip": True}}
        for name, value in extra.items():
            if name == "augmentation":
                training["augmentation"] = {"horizontal_flip": value == "on", "vertical_flip": value == "on"} \
                    if value in ("on", "off") else value
            else:
                training[name] = value
        tasks.append({
            "study_id": "st-1", "trial_id": "st-1-0000", "dataset": dict(spec["dataset"]),
            "model": {**spec["model"], "backbone": backbone},
            "steps": [{"name": "head", "optimizer": optimizer, "learning_rate": rate,
                       "max_epochs": spec["training"]["head_epochs"]},
                      {"name": "finetune", "optimizer": optimizer, "learning_rate": rate,
                       "max_epochs": spec["training"]["finetune_epochs"], "delimiting_layer": {"relative": 0.5}}],
            "training": training, "objective": {"metric": spec["objective"]["metric"]},
            "artifacts_uri": "studies/st-1/trials/st-1-0000"})
    return tasks


@SETTINGS
@given(spec=specs())
def test_the_optimizer_refuses_exactly_what_a_trainer_would_refuse(spec) -> None:
    optimizer_says = accepted(spec) is not None
    event("accepted" if optimizer_says else "refused")
    refused_by_trainer = [t for t in direct_tasks(spec) if not trainer_accepts(t)]
    assert optimizer_says == (not refused_by_trainer), (
        f"optimizer {'accepts' if optimizer_says else 'refuses'} {spec}; the trainer refuses "
        f"{len(refused_by_trainer)} of its tasks" + (f", e.g. {refused_by_trainer[0]}" if refused_by_trainer else ""))
