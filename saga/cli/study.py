"""``saga study create|status|list|trials|stop|best|watch``: talk to the optimizer about studies."""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from optimizer_svc.client import OptimizerClient, parameters
from optimizer_svc.errors import OptimizerError
from saga.cli import security_flags
from saga.security import SecurityConfigError
from saga.cli import watch as watching
from saga.v1 import optimizer_pb2 as pb
from trainer_svc.baselines import compare


OPTIMIZER_HELP = "optimizer address HOST:PORT (env SAGA_OPTIMIZER, default localhost:50051)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--optimizer", default=os.environ.get("SAGA_OPTIMIZER", "localhost:50051"), help=OPTIMIZER_HELP)
    # Every action takes --optimizer too, so it may come before or after the action's arguments
    # (`saga study create SPEC --optimizer HOST:PORT --watch`); SUPPRESS keeps the value given above.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--optimizer", default=argparse.SUPPRESS, help=OPTIMIZER_HELP)
    security_flags.add_client(common)
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = sub.add_parser("create", help="create a study from a YAML or JSON spec file", parents=[common])
    c.add_argument("spec", help="spec file (YAML or JSON), or - for standard input")
    c.add_argument("--watch", action="store_true", help="watch the study after creating it")
    for name, help_ in (("status", "phases, trial counts and the best trial"), ("stop", "stop a study"),
                        ("best", "the best trial: parameters, metrics, artifacts"),
                        ("watch", "live progress until the study ends")):
        a = sub.add_parser(name, help=help_, parents=[common])
        a.add_argument("study_id")
        a.add_argument("--json", action="store_true", help="print JSON") if name in ("status", "best") else None
    ls = sub.add_parser("list", help="all studies, newest first: state, progress, best value, creation time",
                        parents=[common])
    ls.add_argument("--json", action="store_true", help="print JSON")
    tr = sub.add_parser("trials", help="a study's trials: parameters, value, epochs, why each ended",
                        parents=[common])
    tr.add_argument("study_id")
    fmt = tr.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV (one column per parameter)")
    fmt.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    try:
        with OptimizerClient(args.optimizer, security=security_flags.client(args)) as client:
            return ACTIONS[args.action](client, args)
    except (OptimizerError, SecurityConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def load_spec(path: str) -> dict:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise OptimizerError(f"{path}: not valid YAML/JSON: {e}") from None
    if not isinstance(spec, dict):
        raise OptimizerError(f"{path}: a study spec is a mapping")
    return spec


def _create(client: OptimizerClient, args) -> int:
    try:
        spec = load_spec(args.spec)
    except OSError as e:
        print(f"error: cannot read {args.spec}: {e.strerror}", file=sys.stderr)
        return 2
    study = client.create_study(spec)
    print(f"created study {study.id} ({study.name}): phases {', '.join(p.name for p in study.phases)}")
    dataset = json.loads(study.spec_json).get("dataset") or {}
    if dataset.get("manifest_sha256"):
        test = f"test split {dataset['test']!r}" if dataset.get("test") else "no test split"
        print(f"  dataset {dataset.get('uri')}: manifest {dataset['manifest_sha256'][:12]}… pinned, {test}")
    if args.watch:
        args.study_id = study.id
        return _watch(client, args)
    return 0


def _state(study: pb.Study) -> str:
    return pb.StudyState.Name(study.state).removeprefix("STUDY_").lower()


def _status(client: OptimizerClient, args) -> int:
    study = client.get_study(args.study_id)
    best = client.best_trial(args.study_id)
    if args.json:
        from google.protobuf.json_format import MessageToDict
        print(json.dumps({"study": MessageToDict(study), "best": MessageToDict(best) if best else None}, indent=2))
        return 0
    print(f"{study.id}  {study.name}  {_state(study)}" + (f"  ({study.message})" if study.message else ""))
    for ph in study.phases:
        mark = "done" if ph.done else ("running" if ph.index == study.current_phase else "waiting")
        print(f"  phase {ph.index} {ph.name:<9} {ph.trials_finished}/{ph.budget} finished  {mark}")
    counts = ", ".join(f"{k.removeprefix('TRIAL_').lower()} {v}" for k, v in sorted(study.trial_counts.items()))
    print(f"  trials: {counts or 'none yet'}")
    print("  best: " + (_trial_line(best) if best else "none yet"))
    failed = [t for t in client.list_trials(args.study_id)
              if t.state in (pb.TRIAL_FAILED, pb.TRIAL_INFEASIBLE) and t.error]
    for t in failed[-3:]:
        print(f"  {_trial_state(t)} {t.id}: {_reason(t.error)}")
    return 0


def _trial_state(t: pb.Trial) -> str:
    return pb.TrialState.Name(t.state).removeprefix("TRIAL_").lower()


def _reason(error: str) -> str:
    """One line, whatever an old trainer sent."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _trial_line(t: pb.Trial) -> str:
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(parameters(t).items()))
    return f"{t.id} value {t.value:.4f} ({params})"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _when(ts) -> str:
    """A protobuf timestamp in local time, to the minute."""
    if not ts.seconds:
        return "-"
    return dt.datetime.fromtimestamp(ts.seconds, dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")


def _list(client: OptimizerClient, args) -> int:
    rows = []
    for s in client.list_studies():
        best = client.best_trial(s.id)
        spec = json.loads(s.spec_json) if s.spec_json else {}
        rows.append({"id": s.id, "name": s.name, "state": _state(s), "strategy": spec.get("strategy", ""),
                     "objective": spec.get("objective", {}).get("metric", ""),
                     "finished": sum(p.trials_finished for p in s.phases), "total": sum(p.budget for p in s.phases),
                     "best_value": best.value if best else None, "best_trial_id": best.id if best else None,
                     "created": s.create_time.ToJsonString() if s.create_time.seconds else None,
                     "created_local": _when(s.create_time), "message": s.message})
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "created_local"} for r in rows], indent=2))
        return 0
    if not rows:
        print("no studies")
        return 0
    print_table([{**r, "trials": f"{r['finished']}/{r['total']}",
                  "best": "-" if r["best_value"] is None else f"{r['best_value']:.4f}"} for r in rows],
                [("ID", "id"), ("NAME", "name"), ("STATE", "state"), ("STRATEGY", "strategy"), ("TRIALS", "trials"),
                 ("BEST", "best"), ("OBJECTIVE", "objective"), ("CREATED", "created_local")])
    return 0


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [[str(r.get(k, "")) for _, k in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _) in enumerate(columns)]
    for line in [[h for h, _ in columns], *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line[:-1], widths)) + "  " + line[-1])


TRIAL_COLUMNS = [("#", "trial"), ("ID", "id"), ("PHASE", "phase"), ("STATE", "state"), ("VALUE", "value"),
                 ("EPOCHS", "epochs"), ("SECONDS", "duration_s"), ("WORKER", "worker"), ("ENDED BY", "stopped"),
                 ("PARAMETERS", "parameters")]


def _trials(client: OptimizerClient, args) -> int:
    from report.source import read_study  # the report's reader and table: one definition of each column
    from report.tables import cell, trials_table

    rows = trials_table(read_study(client, args.study_id))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    names = sorted({k for r in rows for k in r["parameters"]})
    if args.csv:
        fixed = ["trial", "id", "phase", "state", "value", "epochs", "duration_s", "worker", "attempt", "stopped",
                 "detail"]
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(fixed + names)
        for r in rows:
            out.writerow(["" if r[k] is None else r[k] for k in fixed] + [r["parameters"].get(n, "") for n in names])
        return 0
    if not rows:
        print("no trials yet")
        return 0
    print_table([{**r, **{k: cell(r[k], 4) for k in ("value", "parameters")},
                  "duration_s": "-" if r["duration_s"] is None else f"{r['duration_s']:.0f}",
                  "stopped": r["stopped"] + (f": {watching.first_line(r['detail'])}"
                                             if r["detail"] and r["state"] in ("FAILED", "INFEASIBLE") else "")}
                 for r in rows], [c for c in TRIAL_COLUMNS if c[1] != "parameters"] + [TRIAL_COLUMNS[-1]])
    return 0


def _stop(client: OptimizerClient, args) -> int:
    study = client.stop_study(args.study_id, "stopped from the command line")
    print(f"{study.id}: {_state(study)}")
    return 0


def _best(client: OptimizerClient, args) -> int:
    best = client.best_trial(args.study_id)
    if best is None:
        print("no finished trial yet", file=sys.stderr)
        return 1
    if args.json:
        from google.protobuf.json_format import MessageToDict
        print(json.dumps(MessageToDict(best), indent=2))
        return 0
    print(_trial_line(best))
    for k, v in sorted(best.metrics.items()):
        print(f"  {k}: {v:.4f}")
    for k, v in sorted(best.artifacts.items()):
        print(f"  {k}: {v}")
    comparison = compare(best.metrics)
    if comparison is not None:
        print("\n".join(comparison.lines()))
    return 0


def _watch(client: OptimizerClient, args) -> int:
    return watching.watch(client, args.study_id, optimizer=args.optimizer)


ACTIONS = {"create": _create, "status": _status, "list": _list, "trials": _trials, "stop": _stop, "best": _best,
           "watch": _watch}
