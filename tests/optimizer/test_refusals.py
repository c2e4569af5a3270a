"""Every spec that cannot run is refused at creation over real gRPC: INVALID_ARGUMENT, the field named
first, a hint where one exists; the dataset is checked and pinned when the optimizer reaches the store."""
from __future__ import annotations

import json

import grpc
import pytest

from datastore import load_manifest, open_store
from datastore.local_store import LocalStore
from datastore.manifest import Manifest, save_manifest
from optimizer_svc.core import OptimizerCore
from optimizer_svc.datasets import DatasetCheck
from optimizer_svc.server import make_server
from saga.v1 import optimizer_pb2 as pb
from saga.v1 import optimizer_pb2_grpc as pb_grpc
from tests.s3server import s3_env

SPLITS_70_30 = {"train": 0.7, "validation": 0.3}


def _dataset(root, fractions=SPLITS_70_30) -> str:
    save_manifest(LocalStore(root), Manifest(classes=["a", "b"], items=[], seed=0, split_fractions=fractions))
    return str(root)


@pytest.fixture(scope="module")
def stub(tmp_path_factory, s3_endpoint):
    """A real optimizer on localhost that checks datasets (local, and S3 through moto)."""
    core = OptimizerCore(str(tmp_path_factory.mktemp("opt") / "opt.db"), datasets=DatasetCheck(s3_env(s3_endpoint)))
    server, port = make_server(core, "127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.OptimizerStub(channel)
    channel.close()
    server.stop(grace=None).wait()
    core.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    """A local dataset uploaded 70/30: train and validation, no test split."""
    return _dataset(tmp_path_factory.mktemp("data") / "kvasir")


def _create(stub, spec: dict | str) -> pb.Study:
    text = spec if isinstance(spec, str) else json.dumps(spec)
    return stub.CreateStudy(pb.CreateStudyRequest(spec_json=text), timeout=30).study


def _with(data: str, **sections) -> dict:
    spec = {"dataset": {"uri": data}, "model": {"image_size": 64},
            "search_space": {"backbone": {"type": "categorical", "values": ["MobileNetV2"]}}}
    for key, value in sections.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
    return spec


def _space(**params) -> dict:
    return {"search_space": {"backbone": {"type": "categorical", "values": ["MobileNetV2"]}, **params}}


REFUSALS = [
    # (what, spec changes, field named first, hint)
    ("misspelled backbone", _space(backbone={"type": "categorical", "values": ["MobilenetV2"]}),
     "search_space.backbone.values[0]", "did you mean MobileNetV2?"),
    ("unknown optimizer", _space(optimizer={"type": "categorical", "values": ["Adam", "adamw"]}),
     "search_space.optimizer.values[1]", "did you mean AdamW?"),
    ("a metric no trainer reports", {"objective": {"metric": "val_acc"}}, "objective.metric",
     "did you mean val_accuracy?"),
    ("image size below the backbone's minimum", {"model": {"image_size": 16}}, "model.image_size",
     "smallest input of MobileNetV2 (32 px"),
    ("absurd epochs", {"training": {"head_epochs": 10**12}}, "training.head_epochs", "at most 1000"),
    ("absurd trials", {"budget": {"trials_per_phase": 2**70}}, "budget.trials_per_phase", "[1, 10000]"),
    ("absurd batch size", {"training": {"batch_size": 10**6}}, "training.batch_size", "at most 4096"),
    ("absurd image size", {"model": {"image_size": 10**5}}, "model.image_size", "at most 1024"),
    ("a parameter no trainer reads", _space(dropout={"type": "float", "low": 0.0, "high": 0.5}),
     "search_space.dropout", "did you mean head_dropout?"),
    ("a tunable beyond its bounds", _space(head_dropout={"type": "float", "low": 0.0, "high": 1.5}),
     "search_space.head_dropout.high", "at most 0.9"),
    ("an unknown phase in the budget", {"budget": {"trials_per_phase": {"serach": 5}}},
     "budget.trials_per_phase.serach", "did you mean search?"),
    ("an ftp dataset", {"dataset": {"uri": "ftp://files.example/kvasir"}}, "dataset.uri", "unsupported scheme 'ftp'"),
    ("a dataset path climbing out", {"dataset": {"uri": "../../etc"}}, "dataset.uri", "'..'"),
    ("credentials in the dataset URI", {"dataset": {"uri": "s3://minio:secret@saga/kvasir"}}, "dataset.uri",
     "SAGA_S3_ACCESS_KEY"),
    ("artifacts outside the dataset's store", {"dataset": {"uri": "s3://saga/datasets/kvasir"},
                                               "artifacts_uri": "/tmp/runs"}, "artifacts_uri", "store its dataset"),
    ("a dataset never uploaded", {"dataset": {"uri": "/nonexistent/kvasir"}}, "dataset.uri", "saga data upload"),
    ("a dataset never uploaded to S3", {"dataset": {"uri": "s3://saga-datasets/none"}}, "dataset.uri",
     "saga data upload"),
    ("a split the dataset does not have", {"dataset": {"validation": "val"}}, "dataset.validation",
     "its splits are train, validation"),
    ("a test split named but missing", {"dataset": {"test": "test"}}, "dataset.test", "null: no test split"),
    ("a pinned manifest that differs", {"dataset": {"manifest_sha256": "0" * 64}}, "dataset.manifest_sha256",
     "uploaded again?"),
    ("a misspelled section", {"stoping": {}}, "stoping", "did you mean stopping?"),
    ("a misspelled field", {"training": {"head_epoch": 3}}, "training.head_epoch", "did you mean head_epochs?"),
    ("a rotation beyond a half turn", {"training": {"augmentation": {"rotate": 270}}}, "training.augmentation.rotate",
     "at most 180"),
    ("an unknown learning-rate schedule", {"training": {"lr_schedule": "cosine_restarts"}}, "training.lr_schedule",
     "'constant' or 'cosine'"),
    ("a goal against the metric", {"objective": {"metric": "val_loss", "goal": "maximize"}}, "objective.goal",
     "minimized"),
]


@pytest.mark.parametrize("what, changes, field, hint", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_at_creation_with_the_field_and_a_hint(stub, data, what, changes, field, hint) -> None:
    spec = _with(data)
    for key, value in changes.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
    with pytest.raises(grpc.RpcError) as refused:
        _create(stub, spec)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert refused.value.details().startswith(f"{field}: "), refused.value.details()
    assert hint in refused.value.details(), refused.value.details()


def test_a_spec_nested_thousands_deep_is_invalid_argument(stub, data) -> None:
    deep = '{"dataset": {"uri": "%s"}, "model": {"options": {"a": %s}}}' % (data, "[" * 5000 + "]" * 5000)
    with pytest.raises(grpc.RpcError) as refused:
        _create(stub, deep)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("spec: nested deeper than")


def test_a_70_30_upload_runs_without_test_split_and_the_manifest_is_pinned(stub, data) -> None:
    study = _create(stub, _with(data))
    dataset = json.loads(study.spec_json)["dataset"]
    assert dataset["test"] is None  # the default test split is not there: "no test split", not failed trials
    pinned = load_manifest(open_store(data)).sha256
    assert dataset["manifest_sha256"] == pinned
    got = stub.LeaseTrial(pb.LeaseTrialRequest(worker_id="w", study_id=study.id), timeout=60)
    task = json.loads(got.trial.task_json)
    assert task["dataset"]["manifest_sha256"] == pinned and task["dataset"]["test"] is None
