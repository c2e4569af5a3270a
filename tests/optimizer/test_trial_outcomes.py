"""What a trial scores and how failures reach the user (thesis 3.4.7; budget.max_failed_trials).

Over real localhost gRPC: a worker reports epochs of both steps; the trial scores its scored step
only, the head step's best stored beside it. Failing trials end the study with the last reason;
a completion the optimizer refuses never kills a worker.
"""
from __future__ import annotations

import json

from optimizer_svc.client import OptimizerClient
from saga.v1 import optimizer_pb2 as pb
from trainer_svc.completion import complete

from .conftest import small_spec


def _run(client: OptimizerClient, trial, lease, curve: dict[str, list[float]]) -> pb.Trial:
    for step in json.loads(trial.task_json)["steps"]:
        for epoch, acc in enumerate(curve[step["name"]]):
            client.report_progress(trial.id, lease.id, step["name"], epoch, {"val_accuracy": acc})
    return client.complete_trial(trial.id, lease.id, "SUCCEEDED", metrics={"base_layers": 50.0},
                                 artifacts={"head_checkpoint": f"s3://test-artifacts/{trial.id}/head.keras"})


def test_a_diverging_finetuning_step_scores_the_finetuning_value(service) -> None:
    target, _ = service
    with OptimizerClient(target) as client:
        study = client.create_study(small_spec("shared", stopping={"nonconvergence": {"enabled": False},
                                                                   "early_stopping": {"enabled": False}}))
        trial, lease = client.lease_trial("w", study_id=study.id, wait=10)
        done = _run(client, trial, lease, {"head": [0.6, 0.9, 0.8], "finetune": [0.5, 0.3, 0.2]})
        # fine-tuning is what the search phase optimizes: its best (0.5), not the head step's 0.9
        assert done.value == 0.5 and done.metrics["head_val_accuracy"] == 0.9


def test_the_head_phase_of_separate_steps_scores_the_head_step(service) -> None:
    target, _ = service
    with OptimizerClient(target) as client:
        study = client.create_study(small_spec("separate_steps", budget={"trials_per_phase": 1}))
        trial, lease = client.lease_trial("w", study_id=study.id, wait=10)
        assert [s["name"] for s in json.loads(trial.task_json)["steps"]] == ["head"]
        assert _run(client, trial, lease, {"head": [0.6, 0.9, 0.8]}).value == 0.9
        trial, lease = client.lease_trial("w", study_id=study.id, wait=10)  # the finetune phase
        assert json.loads(trial.task_json)["objective"]["step"] == "finetune"
        assert _run(client, trial, lease, {"finetune": [0.4, 0.7]}).value == 0.7


def test_failing_trials_end_the_study_with_the_last_reason(service) -> None:
    target, _ = service
    with OptimizerClient(target) as client:
        study = client.create_study(small_spec(budget={"trials_per_phase": 10, "max_attempts": 1,
                                                       "max_failed_trials": 3}))
        reasons = ["InvalidTask: task field 'model': cannot build MobileNetV2 with options {'alhpa': 0.35}",
                   "diverged: non-finite loss in step head",  # about the parameters: not a study failure
                   "WeightsError: 3 layers of saga_VGG16 have no weights in the file",
                   "OSError: disk full\nTraceback (most recent call last):\n  File x",
                   "RuntimeError: CUDA error"]
        outcomes = ["INFEASIBLE", "INFEASIBLE", "INFEASIBLE", "FAILED", "FAILED"]
        for outcome, reason in zip(outcomes, reasons):
            trial, lease = client.lease_trial("w", study_id=study.id, wait=10)
            client.complete_trial(trial.id, lease.id, outcome, error=reason)
            if client.get_study(study.id).state != pb.STUDY_ACTIVE:
                break
        study = client.get_study(study.id)
        assert study.state == pb.STUDY_FAILED
        # the diverged trial broke the first run of failures; the last three ended it
        assert study.message == ("3 trials failed in a row (budget.max_failed_trials = 3); "
                                 "last: RuntimeError: CUDA error")
        errors = [t.error for t in client.list_trials(study.id)]
        assert errors[3] == "OSError: disk full"  # one line, no traceback, in ListTrials
        assert client.lease_trial("w", study_id=study.id, wait=0) is None  # the budget is not spent


def test_a_refused_completion_becomes_a_failure_with_its_reason(service) -> None:
    target, _ = service
    with OptimizerClient(target) as client:
        study = client.create_study(small_spec(budget={"max_attempts": 1}))
        trial, lease = client.lease_trial("w", study_id=study.id, wait=10)
        # SUCCEEDED without any value of the objective: the optimizer refuses it; the worker goes on
        assert complete(client, trial.id, lease.id, "SUCCEEDED", {"accuracy": 0.9}, {}, "") == "FAILED"
        failed = client.get_trial(trial.id)
        assert failed.state == pb.TRIAL_FAILED
        assert failed.error.startswith("the optimizer refused the SUCCEEDED completion: metrics: no value of "
                                       "the objective metric 'val_accuracy'")
