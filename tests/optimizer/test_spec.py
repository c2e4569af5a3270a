"""The study spec: the seed's defaults, and a clear refusal naming the field for anything that cannot run."""
import json

import pytest

from optimizer_svc.errors import InvalidArgument
from optimizer_svc.space import CategoricalParam, FloatParam
from optimizer_svc.spec import SEED_BACKBONES, SEED_OPTIMIZERS, parse_spec


def test_defaults_are_the_seeds():
    spec = parse_spec({"dataset": {"uri": "s3://saga/datasets/kvasir"}})
    assert spec.strategy == "shared"
    assert spec.params["backbone"] == CategoricalParam("backbone", SEED_BACKBONES)
    assert spec.params["optimizer"] == CategoricalParam("optimizer", SEED_OPTIMIZERS)
    assert spec.params["learning_rate"] == FloatParam("learning_rate", 1e-4, 1.0, "linear")
    assert spec.layer.type == "absolute" and spec.layer.high is None
    assert spec.objective_metric == "val_accuracy" and spec.maximize
    assert spec.budget.initial_points == 5 and spec.budget.trials_for("search") == 20
    s = spec.stopping
    assert (s.nonconvergence, s.nonconvergence_threshold, s.nonconvergence_epochs) == (True, 0.5, 5)
    assert (s.early_stopping, s.early_stopping_patience) == (True, 5)
    assert spec.training["head_epochs"] == 10 and spec.training["finetune_epochs"] == 50
    assert spec.training["default_delimiting_depth"] == pytest.approx(2 / 3)
    # The stored spec is complete: parsing it again gives the same spec.
    assert parse_spec(spec.to_json()).raw == spec.raw


def test_user_values_override_and_tunables_are_searched():
    spec = parse_spec({"dataset": {"uri": "/d"}, "strategy": "separate",
                       "search_space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 0.1, "scale": "log"},
                                        "head_dropout": {"type": "float", "low": 0.0, "high": 0.5}},
                       "budget": {"trials_per_phase": {"default": 8, "layer": 3}},
                       "training": {"batch_size": 32, "momentum": 0.9}})
    assert spec.params["learning_rate"].scale == "log"
    assert [p.name for p in spec.extras] == ["head_dropout"]
    assert spec.budget.trials_for("search") == 8 and spec.budget.trials_for("layer") == 3
    assert spec.training["momentum"] == 0.9 and spec.training["head_epochs"] == 10
    # A parameter no trainer reads, or a training field nobody applies, is refused, not searched.
    with pytest.raises(InvalidArgument,
                       match=r"search_space.dropout: unknown parameter \(did you mean head_dropout\?\)"):
        parse_spec({"dataset": {"uri": "/d"}, "search_space": {"dropout": {"type": "float", "low": 0, "high": 0.5}}})
    with pytest.raises(InvalidArgument, match="training.mixed_precision: unknown field"):
        parse_spec({"dataset": {"uri": "/d"}, "training": {"mixed_precision": True}})


def test_joint_searches_relative_depth():
    spec = parse_spec({"dataset": {"uri": "/d"}, "strategy": "joint"})
    assert spec.layer.type == "relative" and (spec.layer.low, spec.layer.high) == (0.0, 1.0)


@pytest.mark.parametrize("spec, field", [
    ("{not json", "spec"),
    ("[1, 2]", "spec"),
    ({}, "dataset.uri"),
    ({"dataset": {"uri": ""}}, "dataset.uri"),
    ({"dataset": {"uri": "/d"}, "strategy": "bayes"}, "strategy"),
    ({"dataset": {"uri": "/d"}, "colour": "red"}, "colour"),
    ({"dataset": {"uri": "/d"}, "budget": {"trials_per_phase": 0}}, "budget.trials_per_phase"),
    ({"dataset": {"uri": "/d"}, "budget": {"parallel_trials": "4"}}, "budget.parallel_trials"),
    ({"dataset": {"uri": "/d"}, "budget": {"trialz": 4}}, "budget.trialz"),
    ({"dataset": {"uri": "/d"}, "search_space": {"learning_rate": {"type": "float", "low": 1, "high": 0.1}}},
     "search_space.learning_rate"),
    ({"dataset": {"uri": "/d"}, "search_space": {"learning_rate": {"type": "float", "low": 0, "high": 1, "scale": "log"}}},
     "search_space.learning_rate.low"),
    ({"dataset": {"uri": "/d"}, "search_space": {"backbone": {"type": "categorical", "values": []}}},
     "search_space.backbone.values"),
    ({"dataset": {"uri": "/d"}, "search_space": {"backbone": {"type": "int", "low": 0, "high": 3}}},
     "search_space.backbone"),
    ({"dataset": {"uri": "/d"}, "search_space": {"delimiting_layer": {"type": "relative", "high": 2}}},
     "search_space.delimiting_layer.high"),
    ({"dataset": {"uri": "/d"}, "strategy": "joint", "search_space": {"delimiting_layer": {"type": "absolute"}}},
     "search_space.delimiting_layer.type"),
    ({"dataset": {"uri": "/d"}, "stopping": {"nonconvergence": {"threshold": float("nan")}}},
     "stopping.nonconvergence.threshold"),
    ({"dataset": {"uri": "/d"}, "objective": {"goal": "up"}}, "objective.goal"),
    ({"dataset": {"uri": "/d"}, "model": {"family": "scratch"}}, "model.family"),
    ({"dataset": {"uri": "/d"}, "training": {"default_delimiting_depth": 1.5}}, "training.default_delimiting_depth"),
    ({"dataset": {"uri": "/d"}, "seed": -1}, "seed"),
    ({"dataset": {"uri": "/d"}, "lease": {"timeout_seconds": 0}}, "lease.timeout_seconds"),
])
def test_bad_specs_name_the_field(spec, field):
    with pytest.raises(InvalidArgument) as e:
        parse_spec(spec if isinstance(spec, str) else json.dumps(spec))
    assert str(e.value).startswith(field), str(e.value)


def test_the_example_specs_in_the_repo_are_valid():
    from pathlib import Path

    import yaml
    examples = sorted(Path(__file__).parents[2].joinpath("examples").glob("*.yaml"))
    assert examples
    for path in examples:
        parse_spec(yaml.safe_load(path.read_text()))


def test_backbone_options_and_artifacts_location_reach_the_task():
    from optimizer_svc.strategies import PhaseContext, build_task
    spec = parse_spec({"dataset": {"uri": "s3://saga/datasets/d"}, "model": {"options": {"alpha": 0.35}},
                       "artifacts_uri": "s3://saga/runs"})
    task = build_task(spec, study_id="st-1", trial_id="st-1-0000", attempt=1, phase_index=0, phase="search",
                      ctx=PhaseContext({}, None), artifacts_uri="s3://saga/runs/studies/st-1/trials/st-1-0000",
                      parameters={"backbone": "MobileNetV2", "optimizer": "Adam", "learning_rate": 0.01})
    assert task["model"]["options"] == {"alpha": 0.35} and task["model"]["backbone"] == "MobileNetV2"
    with pytest.raises(InvalidArgument, match="model.options"):
        parse_spec({"dataset": {"uri": "/d"}, "model": {"options": [1]}})
    with pytest.raises(InvalidArgument, match="artifacts_uri"):
        parse_spec({"dataset": {"uri": "/d"}, "artifacts_uri": 5})


def test_a_spec_stored_before_the_contract_stays_readable():
    from optimizer_svc.spec import parse_stored
    old = json.dumps({"dataset": {"uri": "/d"}, "training": {"head_epochs": 2, "mixed_precision": True},
                      "search_space": {"dropout": {"type": "float", "low": 0.0, "high": 0.5}}})
    spec = parse_stored(old)
    assert spec.training["head_epochs"] == 2 and "dropout" not in spec.params
    with pytest.raises(InvalidArgument, match="strategy"):
        parse_stored(json.dumps({"dataset": {"uri": "/d"}, "strategy": "bayes"}))
