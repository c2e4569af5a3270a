"""``saga report STUDY_ID --out DIR``: the seed's figures and tables for a study (finished or running):
``DIR/index.html`` (self-contained), ``DIR/figures/*.png``, ``DIR/tables/*.md`` and ``*.json``."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from optimizer_svc.client import OptimizerClient
from optimizer_svc.errors import OptimizerError
from saga.cli import security_flags
from saga.security import SecurityConfigError
from saga.cli.progress import Step


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_id", help="the study to report on")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the report into")
    parser.add_argument("--optimizer", default=os.environ.get("SAGA_OPTIMIZER", "localhost:50051"),
                        help="optimizer HOST:PORT (env SAGA_OPTIMIZER, default localhost:50051)")
    parser.add_argument("--dataset-name", help="name the dataset (kvasir or nerthus add the dataset paper's "
                                               "baselines); default: read from the study's dataset URI")
    security_flags.add_client(parser)


def run(args: argparse.Namespace) -> int:
    from report.build import write_report
    from report.source import read_for_report

    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} exists and is not a folder", file=sys.stderr)
        return 2
    try:
        with OptimizerClient(args.optimizer, security=security_flags.client(args)) as client:
            print(f"reading study {args.study_id} and its best trial's evaluation from {args.optimizer}",
                  flush=True)
            study, evaluation, why = read_for_report(client, args.study_id)
    except (OptimizerError, SecurityConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{study.name}: {study.state.lower()}, {len(study.trials)} trials", flush=True)
    with Step("drawing figures and tables"):
        report = write_report(study, evaluation, args.out, evaluation_note=why, dataset_name=args.dataset_name)
    for note in report.notes:
        print(f"  not included: {note}")
    print(f"wrote {report.index} ({len(report.figures)} figures, {len(report.tables)} table files)")
    return 0
