"""Weights on a cluster without internet: `weights: imagenet` fails at creation, or at the first
lease, with a message that says what to do instead."""
from __future__ import annotations

import pytest

from optimizer_svc.core import OptimizerCore
from optimizer_svc.egress import check_offline
from optimizer_svc.errors import InvalidArgument
from optimizer_svc.spec import parse_spec
from tests.optimizer.conftest import small_spec

from .conftest import REPO


def test_an_offline_optimizer_refuses_imagenet_and_says_how_to_upload_weights(tmp_path) -> None:
    core = OptimizerCore(str(tmp_path / "opt.db"), offline=True)
    try:
        for spec in (small_spec(), small_spec(model={"weights": "imagenet"})):  # imagenet is the default
            with pytest.raises(InvalidArgument, match=r"model\.weights: 'imagenet'") as refused:
                core.create_study(spec)
            assert "saga weights upload FILE s3://" in str(refused.value)
            assert "saga weights pretrain" in str(refused.value)
        assert core.list_studies() == []
        # A weights file from the store, or none, is fine.
        core.create_study(small_spec(model={"weights": "s3://saga/weights/vgg16.keras"}))
        core.create_study(small_spec(model={"weights": None}, strategy="joint"))
    finally:
        core.close()


def test_an_optimizer_with_internet_accepts_imagenet(tmp_path) -> None:
    core = OptimizerCore(str(tmp_path / "opt.db"))
    try:
        assert core.create_study(small_spec(model={"weights": "imagenet"})).id
    finally:
        core.close()


def test_the_optimizer_reads_offline_from_the_cluster_config(monkeypatch) -> None:
    import argparse

    from saga.cli import optimizer

    for value, expected in (("true", True), ("false", False), ("", False)):
        monkeypatch.setenv("SAGA_OFFLINE", value)
        parser = argparse.ArgumentParser()
        optimizer.configure(parser)
        assert parser.parse_args([]).offline is expected


def test_a_trainer_without_internet_says_what_to_do_instead_of_a_url_error(tmp_path, monkeypatch) -> None:
    """This machine reaches no model hub: the real Keras download fails as on an air-gapped cluster."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    from trainer_svc.errors import WeightsError
    from trainer_svc.models import build_model

    with pytest.raises(WeightsError, match="cannot download the ImageNet weights of MobileNetV2") as failed:
        build_model("MobileNetV2", 2, 32, "imagenet")
    assert "saga weights upload" in str(failed.value)


def test_the_example_study_for_the_cluster_uses_a_weights_file_from_the_store() -> None:
    import yaml

    spec = yaml.safe_load((REPO / "examples" / "kvasir-cluster.yaml").read_text())
    assert spec["model"]["weights"].startswith("s3://saga/weights/")
    text = (REPO / "examples" / "kvasir-cluster.yaml").read_text()
    assert "saga weights upload" in text and spec["model"]["weights"] in text
    check_offline(parse_spec(spec))  # a valid study the cluster's optimizer accepts
