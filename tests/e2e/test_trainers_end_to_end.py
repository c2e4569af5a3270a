"""The whole training side for real: the optimizer process, two `saga trainer` processes, an S3 server
(moto, reached with the real minio client), a tiny synthetic dataset, a small backbone, real TensorFlow."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datastore import open_store
from datastore.synth import synthesize
from datastore.upload import upload_dataset
from optimizer_svc.client import OptimizerClient
from saga.v1 import optimizer_pb2 as pb
from tests.optimizer.conftest import start_optimizer_process
from tests.s3server import s3_env, start_s3_server

pytestmark = pytest.mark.slow


def spec(strategy: str, dataset: str, trials: int = 1, **over) -> dict:
    s = {"name": f"e2e-{strategy}", "dataset": {"uri": dataset}, "strategy": strategy,
         "model": {"weights": None, "image_size": 32},
         "search_space": {"backbone": {"type": "categorical", "values": ["VGG16"]},
                          "optimizer": {"type": "categorical", "values": ["Adam", "RMSprop"]},
                          "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "scale": "log"}},
         "budget": {"trials_per_phase": trials, "initial_points": 2, "parallel_trials": 2, "max_attempts": 3},
         "training": {"head_epochs": 1, "finetune_epochs": 1, "batch_size": 8},
         "seed": 3}
    s.update(over)
    return s


class Cluster:
    def __init__(self, tmp: Path, env: dict[str, str]):
        self.tmp, self.env = tmp, env
        self.optimizer, self.target = start_optimizer_process(tmp / "opt.db", tmp / "optimizer.log")
        self.trainers: list[subprocess.Popen] = []
        self.names: list[str] = []
        self.client = OptimizerClient(self.target)

    def trainer(self, name: str) -> subprocess.Popen:
        return self.trainers[self.names.index(name)]

    def add_trainer(self, name: str) -> subprocess.Popen:
        """Starts trainer ``name`` (again, replacing a stopped one of that name)."""
        log = open(self.tmp / f"{name}.log", "a")
        p = subprocess.Popen([sys.executable, "-m", "saga.cli.main", "trainer", "--optimizer", self.target,
                              "--store", "s3://saga", "--cache-dir", str(self.tmp / "cache"),
                              "--work-dir", str(self.tmp / name), "--worker-id", name, "--lease-wait", "2"],
                             stdout=log, stderr=log, env=self.env)
        if name in self.names:
            self.trainers[self.names.index(name)] = p
        else:
            self.names.append(name)
            self.trainers.append(p)
        return p

    def run_study(self, s: dict, timeout: float = 420) -> pb.Study:
        study = self.client.create_study(s)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            study = self.client.get_study(study.id)
            if study.state != pb.STUDY_ACTIVE:
                return study
            assert any(p.poll() is None for p in self.trainers), self.logs()
            time.sleep(0.5)
        raise AssertionError(f"study {study.id} did not finish in {timeout}s\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text()[-3000:]}" for f in sorted(self.tmp.glob("*.log")))

    def close(self) -> None:
        for p in [*self.trainers, self.optimizer]:
            if p.poll() is None:
                p.terminate()
        for p in [*self.trainers, self.optimizer]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        self.client.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    endpoint, stop_s3 = start_s3_server()
    env = {**os.environ, **s3_env(endpoint), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": ""}
    saved = dict(os.environ)
    os.environ.update(s3_env(endpoint))
    synthesize(tmp / "images", classes=3, per_class=16, size=32, seed=1, corrupt=2)
    manifest = upload_dataset(tmp / "images", open_store("s3://saga/datasets/synth"), seed=1)
    assert len(manifest.skipped) == 2  # corrupt files are reported and left out
    # A layer phase needs a backbone with weights (weights null trains every layer): a stored file.
    import keras
    keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(
        tmp / "vgg16.weights.h5")
    weights = open_store("s3://saga/weights").put_file("vgg16.weights.h5", tmp / "vgg16.weights.h5")
    c = Cluster(tmp, env)
    c.weights = weights
    c.add_trainer("trainer-a")
    c.add_trainer("trainer-b")
    yield c
    c.close()
    stop_s3()
    os.environ.clear()
    os.environ.update(saved)


def test_shared_study_with_its_layer_phase_completes_with_artifacts(cluster):
    study = cluster.run_study(spec("shared", "s3://saga/datasets/synth", trials=2,
                                   model={"weights": cluster.weights, "image_size": 32}))
    cluster.shared_study = study.id
    assert study.state == pb.STUDY_COMPLETED, study.message + cluster.logs()
    for name in ("trainer-a", "trainer-b"):  # each attempt's work directory went when the attempt ended
        work = cluster.tmp / name
        assert not (list(work.rglob("*")) if work.exists() else []), f"{name} left {list(work.rglob('*'))[:5]}"
    trials = cluster.client.list_trials(study.id)
    assert [t.phase for t in trials] == [0, 0, 1, 1]
    assert {t.worker_id for t in trials} <= {"trainer-a", "trainer-b"}
    best = cluster.client.best_trial(study.id)
    for name in ("checkpoint", "head_checkpoint", "history", "metrics"):
        assert name in best.artifacts or best.phase == 1 and name == "head_checkpoint"
    store = open_store("s3://saga")
    key = best.artifacts["metrics"].removeprefix("s3://saga/")
    report = json.loads(store.get_bytes(key))
    assert key.startswith(f"studies/{study.id}/trials/{best.id}/")
    assert set(report["evaluation"]) == {"validation", "test"}
    assert len(report["evaluation"]["test"]["confusion_matrix"]) == 3
    for m in ("val_accuracy", "test_accuracy", "val_mcc", "test_macro_f1", "base_layers",
              "baseline_majority_test_accuracy", "baseline_pixels_test_macro_f1"):
        assert m in best.metrics
    # a trial scores its fine-tuning step; the head step's best is stored beside it (thesis 3.4.7)
    assert best.value == pytest.approx(max(m.metrics["val_accuracy"] for m in best.measurements
                                           if m.step == "finetune"))
    if any(m.step == "head" for m in best.measurements):
        assert best.metrics["head_val_accuracy"] == pytest.approx(
            max(m.metrics["val_accuracy"] for m in best.measurements if m.step == "head"))
    # the layer phase started from the best search trial's head checkpoint and fine-tuned only
    layer = [t for t in trials if t.phase == 1]
    task = json.loads(layer[0].task_json)
    search_best = cluster.client.best_trial(study.id, phase=0)
    assert task["start_from"]["uri"] == search_best.artifacts["head_checkpoint"]
    assert [s["name"] for s in task["steps"]] == ["finetune"]
    assert all(0 <= t.parameters["delimiting_layer"].int_value < search_best.metrics["base_layers"] for t in layer)


def test_the_best_trial_exports_to_tf_serving_layout_in_s3(cluster):
    study_id = getattr(cluster, "shared_study", None)
    assert study_id, "needs the shared study of the test before"
    r = subprocess.run([sys.executable, "-m", "saga.cli.main", "export", study_id, "--model-name", "synth",
                        "--to", "s3://saga/models", "--optimizer", cluster.target],
                       env=cluster.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    store = open_store("s3://saga/models")
    keys = list(store.list("synth/1/"))
    assert "synth/1/saved_model.pb" in keys
    card = json.loads(store.get_bytes("synth/1/assets.extra/model_card.json"))
    best = cluster.client.best_trial(study_id)
    assert card["trial_id"] == best.id and card["study_id"] == study_id
    assert card["test_metrics"]["test_accuracy"] == pytest.approx(best.metrics["test_accuracy"])
    assert len(card["class_names"]) == 3


def test_the_report_shows_the_trainers_evaluation_of_the_best_trial(cluster, tmp_path):
    from tests.report.browser import probe

    study_id = getattr(cluster, "shared_study", None)
    assert study_id, "needs the shared study of the test before"
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "saga.cli.main", "report", study_id, "--out", str(out),
                        "--optimizer", cluster.target, "--dataset-name", "kvasir"],
                       env=cluster.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    best = cluster.client.best_trial(study_id)
    stored = json.loads(open_store("s3://saga").get_bytes(best.artifacts["metrics"].removeprefix("s3://saga/")))
    for split in ("validation", "test"):
        ev = stored["evaluation"][split]
        rows = json.loads((out / "tables" / f"per_class_{split}.json").read_text())
        assert [row["class"] for row in rows] == ev["classes"] + ["Average"]
        for row in rows[:-1]:
            c = ev["per_class"][row["class"]]
            assert (row["TP"], row["TN"], row["FP"], row["FN"]) == (c["tp"], c["tn"], c["fp"], c["fn"])
            assert (row["REC"], row["PREC"], row["SPEC"], row["MCC"], row["F1"], row["ACC"]) == (
                c["recall"], c["precision"], c["specificity"], c["mcc"], c["f1"], c["accuracy"])
        assert rows[-1]["F1"] == ev["macro"]["f1"] and rows[-1]["MCC"] == ev["macro"]["mcc"]
        assert (out / "figures" / f"confusion_{split}.png").stat().st_size > 0
    baselines = json.loads((out / "tables" / "baselines_kvasir.json").read_text())
    assert baselines[0]["f1"] == stored["evaluation"]["test"]["macro"]["f1"]
    assert any(b["method"] == "6 GF Logistic Model Tree" and b["f1"] == 0.747 for b in baselines)
    # the search phase varies optimizer and learning rate (one backbone): a two-dimensional surrogate
    assert json.loads((out / "tables" / "surrogate_0_search.json").read_text())["parameters"] == [
        "optimizer", "learning_rate"]
    seen = probe(out / "index.html")
    assert seen["errors"] == [] and seen["broken"] == [] and seen["images"] == len(list(out.glob("figures/*.png")))


def test_sigterm_hands_the_running_trial_back_promptly(cluster):
    s = spec("joint", "s3://saga/datasets/synth", trials=1,
             training={"head_epochs": 500, "finetune_epochs": 1, "batch_size": 8})  # still training at SIGTERM
    s["stopping"] = {"nonconvergence": {"enabled": False}, "early_stopping": {"enabled": False}}
    study = cluster.client.create_study(s)
    deadline = time.monotonic() + 180
    running = None
    while running is None and time.monotonic() < deadline:
        running = next((t for t in cluster.client.list_trials(study.id)
                        if t.state == pb.TRIAL_RUNNING and cluster.client.get_trial(t.id).measurements), None)
        time.sleep(0.2)
    assert running is not None, cluster.logs()
    proc = cluster.trainer(running.worker_id)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    trial = cluster.client.get_trial(running.id)
    assert trial.attempt == 2 and "SIGTERM" in trial.error  # handed back, not left to expire
    assert trial.state in (pb.TRIAL_PENDING, pb.TRIAL_RUNNING)
    assert time.monotonic() - sent < 60
    cluster.client.stop_study(study.id)
    cluster.add_trainer(running.worker_id)


def test_a_study_whose_trials_cannot_run_ends_with_the_reason_in_study_status(cluster):
    # A misspelled backbone option: no Keras-free check can know MobileNetV2's arguments, so the
    # trainer finds out. Three trials fail in a row and the study ends, its budget of 8 unspent.
    # (joint: without weights a layer phase is refused at creation, issue 11)
    s = spec("joint", "s3://saga/datasets/synth", trials=8,
             model={"weights": None, "image_size": 32, "options": {"alhpa": 0.35}})
    s["search_space"]["backbone"]["values"] = ["MobileNetV2"]
    study = cluster.run_study(s, timeout=300)
    assert study.state == pb.STUDY_FAILED, study.message + cluster.logs()
    assert study.message.startswith("3 trials failed in a row (budget.max_failed_trials = 3); last: ")
    assert "alhpa" in study.message and "Traceback" not in study.message
    r = subprocess.run([sys.executable, "-m", "saga.cli.main", "study", "status", study.id,
                        "--optimizer", cluster.target], env=cluster.env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "failed in a row" in r.stdout and "unexpected keyword argument 'alhpa'" in r.stdout
    assert sum(p.poll() is None for p in cluster.trainers) == len(cluster.trainers)  # the trainers live on
    assert len(cluster.client.list_trials(study.id)) < 8


@pytest.mark.parametrize("strategy", ["separate", "separate_steps", "joint", "random"])
def test_every_other_strategy_runs(cluster, strategy):
    # joint and random also run from scratch (weights null); a layer phase needs a weights file
    model = {"weights": cluster.weights if strategy.startswith("separate") else None, "image_size": 32}
    study = cluster.run_study(spec(strategy, "s3://saga/datasets/synth", trials=1, model=model))
    assert study.state == pb.STUDY_COMPLETED, study.message + cluster.logs()
    states = {t.state for t in cluster.client.list_trials(study.id)}
    assert states <= {pb.TRIAL_SUCCEEDED, pb.TRIAL_STOPPED_EARLY}


def test_a_trainer_killed_mid_trial_is_replaced_by_the_other(cluster):
    s = spec("joint", "s3://saga/datasets/synth", trials=1, lease={"timeout_seconds": 6},
             training={"head_epochs": 25, "finetune_epochs": 1, "batch_size": 8},  # long enough to kill mid-trial
             model={"weights": cluster.weights, "image_size": 32})  # head epochs train only the head: fast
    s["stopping"] = {"nonconvergence": {"enabled": False}, "early_stopping": {"enabled": False}}
    study = cluster.client.create_study(s)
    deadline = time.monotonic() + 180
    victim = None
    while victim is None and time.monotonic() < deadline:
        for t in cluster.client.list_trials(study.id):
            if t.state == pb.TRIAL_RUNNING and cluster.client.get_trial(t.id).measurements:
                victim = t
        time.sleep(0.2)
    assert victim is not None, cluster.logs()
    cluster.trainer(victim.worker_id).send_signal(signal.SIGKILL)
    cluster.trainer(victim.worker_id).wait(timeout=10)
    while time.monotonic() < deadline + 240:
        study = cluster.client.get_study(study.id)
        if study.state != pb.STUDY_ACTIVE:
            break
        time.sleep(0.5)
    assert study.state == pb.STUDY_COMPLETED, study.message + cluster.logs()
    trial = cluster.client.get_trial(victim.id)
    assert trial.attempt == 2 and trial.worker_id != victim.worker_id and "expired" in trial.error
    assert {m.attempt for m in trial.measurements} == {1, 2}
