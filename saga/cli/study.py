"""``saga study create|status|list|stop|best|watch``: talk to the optimizer about studies."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from optimizer_svc.client import OptimizerClient, parameters
from optimizer_svc.errors import OptimizerError
from saga.v1 import optimizer_pb2 as pb
from trainer_svc.baselines import compare


OPTIMIZER_HELP = "optimizer address HOST:PORT (env SAGA_OPTIMIZER, default localhost:50051)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--optimizer", default=os.environ.get("SAGA_OPTIMIZER", "localhost:50051"), help=OPTIMIZER_HELP)
    # Every action takes --optimizer too, so it may come before or after the action's arguments
    # (`saga study create SPEC --optimizer HOST:PORT --watch`); SUPPRESS keeps the value given above.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--optimizer", default=argparse.SUPPRESS, help=OPTIMIZER_HELP)
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
    sub.add_parser("list", help="all studies", parents=[common])


def run(args: argparse.Namespace) -> int:
    try:
        with OptimizerClient(args.optimizer) as client:
            return ACTIONS[args.action](client, args)
    except OptimizerError as e:
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
    dataset = json.loads(study.spec_json).get("dataset", {})
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


def _list(client: OptimizerClient, args) -> int:
    studies = client.list_studies()
    if not studies:
        print("no studies")
    for s in studies:
        total = sum(p.budget for p in s.phases)
        done = sum(p.trials_finished for p in s.phases)
        print(f"{s.id}  {_state(s):<9} {done:>4}/{total:<4} {s.name}")
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


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else 0
    return "[" + "#" * filled + "-" * (width - filled) + f"] {done}/{total}"


def _failure_note(ev: pb.WatchStudyResponse) -> str:
    """Why a trial failed or went back to the queue, for the watcher; empty for anything else."""
    t = ev.trial
    if ev.event == "trial_finished" and t.state in (pb.TRIAL_FAILED, pb.TRIAL_INFEASIBLE) and t.error:
        return f"trial {t.id} {_trial_state(t)}: {_reason(t.error)}"
    if ev.event == "trial_requeued" and t.error:
        return f"trial {t.id} re-queued (attempt {t.attempt}): {_reason(t.error)}"
    return ""


def _watch(client: OptimizerClient, args) -> int:
    tty = sys.stdout.isatty()
    last = ""
    study = None
    for ev in client.watch(args.study_id):
        study = ev.study
        total = sum(p.budget for p in study.phases)
        done = sum(p.trials_finished for p in study.phases)
        phase = study.phases[study.current_phase]
        running = study.trial_counts.get("TRIAL_RUNNING", 0)
        best = f"best {ev.best_trial.value:.4f} ({ev.best_trial.id})" if ev.HasField("best_trial") else "best -"
        line = f"{_bar(done, total)} phase {phase.name} {phase.trials_finished}/{phase.budget}, running {running}, {best}"
        note = _failure_note(ev)
        if note:  # on its own line, above the progress bar
            print(("\r" + note.ljust(120)) if tty else note, flush=True)
            last = ""
        if line != last:
            print(("\r" + line.ljust(120)) if tty else line, end="" if tty else "\n", flush=True)
            last = line
    if tty:
        print()
    if study is not None:
        print(f"study {study.id} {_state(study)}" + (f": {study.message}" if study.message else ""))
        return 0 if study.state == pb.STUDY_COMPLETED else 1
    return 1


ACTIONS = {"create": _create, "status": _status, "list": _list, "stop": _stop, "best": _best, "watch": _watch}
