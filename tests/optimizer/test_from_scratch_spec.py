"""Studies without weights (issue 11): no layer phase to search; the example specs parse."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from optimizer_svc.errors import InvalidArgument
from optimizer_svc.spec import parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("strategy", ["shared", "separate", "separate_steps"])
def test_weights_null_refuses_a_layer_phase(strategy: str) -> None:
    with pytest.raises(InvalidArgument, match="model.weights: null trains every layer.*'joint' or 'random'"):
        parse_spec({"dataset": {"uri": "/d"}, "model": {"weights": None}, "strategy": strategy})


@pytest.mark.parametrize("strategy", ["joint", "random"])
def test_weights_null_runs_single_phase_strategies(strategy: str) -> None:
    assert parse_spec({"dataset": {"uri": "/d"}, "model": {"weights": None}, "strategy": strategy}).model["weights"] is None


@pytest.mark.parametrize("name", ["kvasir-shared.yaml", "modern-shared.yaml"])
def test_example_specs_parse(name: str) -> None:
    spec = parse_spec(yaml.safe_load((EXAMPLES / name).read_text()))
    assert spec.strategy == "shared"
    lr = spec.params["learning_rate"]
    if name == "kvasir-shared.yaml":  # the thesis's default stays
        assert (lr.low, lr.high) == (1e-4, 1.0)
    else:
        assert lr.scale == "log" and lr.high <= 0.01
