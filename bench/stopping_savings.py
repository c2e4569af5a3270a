"""Compute saved by the stopping rules at equal best result, through the real optimizer service.

A real localhost gRPC server runs ``joint`` studies of Saga's default engine over a space shaped like
Saga's own (9 backbones x 7 optimizers x log learning rate x delimiting depth; the objective of
``bench/peers/tasks.py``'s ``transfer`` task), where too high a learning rate for its optimizer does
not converge: validation accuracy stays at chance in every epoch, the configurations the thesis's
nonconvergence filter exists for. One worker thread "trains" each trial epoch by epoch with a
learning curve towards that objective (head step, then fine-tuning; a little noise per epoch), reports
every epoch with ``ReportProgress`` and obeys the optimizer's stop decisions, exactly as a trainer does.
The same seeds run three times: no stopping rule, nonconvergence filtering only, and both rules (the
spec's defaults). Compute is the number of epochs trained; the best value is the study's best trial.

    .venv/bin/python bench/stopping_savings.py [--seeds 10] [--trials 30] [--head-epochs 10] [--finetune-epochs 50]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import warnings
from statistics import median

import numpy as np
import scipy.stats

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "peers"))
warnings.filterwarnings("ignore")

from optimizer_svc.client import OptimizerClient, parameters  # noqa: E402
from optimizer_svc.core import OptimizerCore  # noqa: E402
from optimizer_svc.server import make_server  # noqa: E402
from saga.v1 import optimizer_pb2 as pb  # noqa: E402
from tasks import BACKBONES, OPTIMIZERS, transfer_accuracy  # noqa: E402

EQUAL = "both rules, the epochs of no rules"
TOLERANCE = 0.005  # the per-epoch noise: values closer than this are the same result
CHANCE = 1 / 16  # transfer_accuracy's value for a configuration that does not converge
NOISE = 0.005    # per-epoch noise of the validation accuracy
VARIANTS = {
    "no rules": {"nonconvergence": {"enabled": False}, "early_stopping": {"enabled": False}},
    "nonconvergence only": {"early_stopping": {"enabled": False}},
    "both rules (defaults)": {},
}


def curve(final: float, step: str, epoch: int, rng: np.random.Generator) -> float:
    """Validation accuracy after ``epoch`` of ``step``: the head step rises to 80% of the way from chance
    to ``final``, fine-tuning the rest; a configuration that does not converge stays at chance."""
    head = CHANCE + 0.8 * (final - CHANCE)
    if step == "head":
        value = CHANCE + (head - CHANCE) * (1 - math.exp(-(epoch + 1) / 2))
    else:
        value = head + (final - head) * (1 - math.exp(-(epoch + 1) / 5))
    return float(min(1.0, max(0.0, value + rng.normal(0, NOISE))))


def train(client: OptimizerClient, trial: pb.Trial, lease: pb.Lease, seed: int) -> int:
    """Runs one trial as a trainer would; returns the epochs it trained."""
    import json

    p = dict(parameters(trial))
    depth = p["delimiting_layer"]
    p["delimiting_layer"] = round(depth * 100) if isinstance(depth, float) else int(depth)
    final = transfer_accuracy(p)
    rng = np.random.default_rng([seed, trial.number])
    epochs = 0
    for step in json.loads(trial.task_json)["steps"]:
        decision = "continue"
        for epoch in range(step["max_epochs"]):
            acc = curve(final, step["name"], epoch, rng)
            epochs += 1
            decision, _ = client.report_progress(trial.id, lease.id, step["name"], epoch,
                                                 {"val_accuracy": acc, "loss": 1 - acc})
            if decision != "continue":
                break
        if decision == "stop_trial":
            break
    client.complete_trial(trial.id, lease.id, "SUCCEEDED", metrics={"base_layers": 100.0})
    return epochs


def run(client: OptimizerClient, variant: str, seed: int, args: argparse.Namespace,
        epoch_budget: int | None = None) -> dict:
    """One study; with ``epoch_budget``, twice the trials but stopped once that many epochs are spent."""
    spec = {"name": f"stopping-{variant}-{seed}", "dataset": {"uri": "/bench"}, "strategy": "joint", "seed": seed,
            "search_space": {"backbone": {"type": "categorical", "values": list(BACKBONES)},
                             "optimizer": {"type": "categorical", "values": list(OPTIMIZERS)},
                             "learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}},
            "budget": {"trials_per_phase": args.trials * (2 if epoch_budget else 1), "initial_points": 5,
                       "parallel_trials": 1},
            "training": {"head_epochs": args.head_epochs, "finetune_epochs": args.finetune_epochs},
            "stopping": VARIANTS[variant]}
    study = client.create_study(spec)
    epochs, progress = 0, []   # (epochs spent, best value so far) after each trial
    while client.get_study(study.id).state == pb.STUDY_ACTIVE:
        if epoch_budget is not None and epochs >= epoch_budget:
            client.stop_study(study.id, "epoch budget spent")
            break
        got = client.lease_trial("bench", study_id=study.id, wait=1.0)
        if got is not None:
            epochs += train(client, *got, seed)
            value = client.get_trial(got[0].id).value
            progress.append((epochs, max(value, progress[-1][1]) if progress else value))
    trials = [t for t in client.list_trials(study.id) if t.has_value]
    hopeless = sum(t.stop_reason.startswith("nonconvergence") for t in trials)
    early = sum(t.stop_reason.startswith("early stopping") for t in trials)
    return {"epochs": epochs, "best": max(t.value for t in trials), "nonconvergence": hopeless, "early": early,
            "trials": len(trials), "progress": progress}


def epochs_to_reach(progress: list[tuple[int, float]], target: float) -> int | None:
    return next((e for e, best in progress if best >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--head-epochs", type=int, default=10)
    ap.add_argument("--finetune-epochs", type=int, default=50)
    args = ap.parse_args()
    core = OptimizerCore(os.path.join(tempfile.mkdtemp(), "bench.db"))
    server, port = make_server(core, "127.0.0.1:0")
    server.start()
    client = OptimizerClient(f"127.0.0.1:{port}")
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for seed in range(args.seeds):
        for variant in VARIANTS:
            r = run(client, variant, seed, args)
            results[variant].append(r)
            print(f"seed {seed} {variant}: { {k: v for k, v in r.items() if k != 'progress'} }", flush=True)
        r = run(client, "both rules (defaults)", seed, args, epoch_budget=results["no rules"][-1]["epochs"])
        results.setdefault(EQUAL, []).append(r)
        print(f"seed {seed} {EQUAL}: { {k: v for k, v in r.items() if k != 'progress'} }", flush=True)
    base = results["no rules"]
    print(f"\n{args.seeds} seeds, {args.trials} trials each, up to {args.head_epochs} + {args.finetune_epochs} "
          "epochs per trial; medians over seeds\n")
    print("| stopping rules | epochs trained | epochs / no rules | best val_accuracy | best vs no rules W/T/L "
          "(Wilcoxon p) | trials stopped: nonconvergence / early stopping |")
    print("|---|---|---|---|---|---|")
    for variant, rows in results.items():
        ratio = median(r["epochs"] / b["epochs"] for r, b in zip(rows, base))
        diff = [r["best"] - b["best"] for r, b in zip(rows, base)]
        wins, losses = sum(d > 1e-9 for d in diff), sum(d < -1e-9 for d in diff)
        ties = len(diff) - wins - losses
        p = scipy.stats.wilcoxon(diff).pvalue if wins + losses >= 5 else float("nan")
        paired = "" if variant == "no rules" else f"{wins}/{ties}/{losses} (p={p:.2g})"
        print(f"| {variant} | {median(r['epochs'] for r in rows):.0f} | {ratio:.2f} | "
              f"{median(r['best'] for r in rows):.4f} | {paired} | "
              f"{median(r['nonconvergence'] for r in rows):.0f} / {median(r['early'] for r in rows):.0f} |")
    print(f"\nEpochs until the best value first comes within {TOLERANCE} of the best of the same seed without rules "
          f"({args.trials} trials); '{EQUAL}' runs up to {2 * args.trials} trials until it has spent the epochs the run without "
          "rules spent:\n")
    print("| stopping rules | seeds that reach it | epochs to reach it (median) | / epochs of the run without rules |")
    print("|---|---|---|---|")
    for variant, rows in results.items():
        reached = [(epochs_to_reach(r["progress"], b["best"] - TOLERANCE), b["epochs"]) for r, b in zip(rows, base)]
        hits = [(e, total) for e, total in reached if e is not None]
        if hits:
            print(f"| {variant} | {len(hits)} of {len(rows)} | {median(e for e, _ in hits):.0f} | "
                  f"{median(e / total for e, total in hits):.2f} |")
        else:
            print(f"| {variant} | 0 of {len(rows)} | - | - |")
    client.close()
    server.stop(None)
    core.close()


if __name__ == "__main__":
    main()
