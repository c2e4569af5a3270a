"""``saga export STUDY_ID --model-name NAME --to MODEL_BASE_URI [--trial ID]``: export a study's
best trial (or a named one) as the next TF Serving version of NAME, with its model card."""
from __future__ import annotations

import argparse
import json
import os
import sys

from typing import TYPE_CHECKING

import grpc

from saga.cli import security_flags
from saga.cli.progress import Step
from saga.security import channels

if TYPE_CHECKING:
    from serving.from_trial import TrialInfo

# Looking up one trial is a single small read; if the optimizer cannot answer in 30 s it is down.
_LOOKUP_TIMEOUT_S = 30.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_id", help="study whose best trial is exported")
    parser.add_argument("--model-name", required=True, help="model name in the model base")
    parser.add_argument("--to", required=True, dest="base", help="model base: directory or s3:// URI")
    parser.add_argument("--trial", help="export this trial instead of the best one")
    parser.add_argument("--optimizer", default=os.environ.get("SAGA_OPTIMIZER", "localhost:50051"),
                        help="optimizer HOST:PORT (env SAGA_OPTIMIZER, default localhost:50051)")
    security_flags.add_client(parser)


def fetch_trial(address: str, study_id: str, trial_id: str | None,
                security: channels.ClientSecurity | None = None) -> "TrialInfo":
    """The trial record from the optimizer, as plain data. The only optimizer call of the export."""
    from saga.v1 import optimizer_pb2, optimizer_pb2_grpc
    from serving.from_trial import TrialInfo

    with channels.channel(address, security) as channel:
        stub = optimizer_pb2_grpc.OptimizerStub(channel)
        if trial_id:
            trial = stub.GetTrial(optimizer_pb2.GetTrialRequest(trial_id=trial_id),
                                  timeout=_LOOKUP_TIMEOUT_S).trial
        else:
            response = stub.GetBestTrial(optimizer_pb2.GetBestTrialRequest(study_id=study_id),
                                         timeout=_LOOKUP_TIMEOUT_S)
            if not response.HasField("trial"):
                raise LookupError(f"study {study_id} has no completed trial yet")
            trial = response.trial
    if trial.study_id != study_id:
        raise LookupError(f"trial {trial.id} belongs to study {trial.study_id}, not {study_id}")
    parameters = {k: getattr(v, v.WhichOneof("value")) for k, v in trial.parameters.items()
                  if v.WhichOneof("value")}
    return TrialInfo(study_id=trial.study_id, trial_id=trial.id, parameters=parameters,
                     metrics=dict(trial.metrics), artifacts=dict(trial.artifacts),
                     task=json.loads(trial.task_json) if trial.task_json else {})


def run(args: argparse.Namespace) -> int:
    try:
        print(f"looking up {'trial ' + args.trial if args.trial else 'the best trial'} of {args.study_id} "
              f"at {args.optimizer}", flush=True)
        with Step("importing TensorFlow"):
            from serving.from_trial import export_trial
        trial = fetch_trial(args.optimizer, args.study_id, args.trial, security_flags.client(args))
        print(f"checkpoint {trial.artifacts.get('checkpoint')}", flush=True)
        with Step(f"exporting trial {trial.trial_id} (download, load, SavedModel with its serving signature)"):
            result = export_trial(trial, args.base, args.model_name)
    except grpc.RpcError as exc:
        print(f"error: optimizer at {args.optimizer}: {exc.code().name}: {exc.details()}"
              f"{channels.hint(exc.details(), security_flags.client(args))}", file=sys.stderr)
        return 1
    except (LookupError, ValueError) as exc:  # ValueError includes SecurityConfigError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"exported {result.name} version {result.version} to {result.uri}")
    return 0
