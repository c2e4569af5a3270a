"""The report's tables as rows of plain values (JSON as they are, Markdown through ``markdown``).

Numbers are copied from what the optimizer and the trainer stored, never recomputed where a stored
value exists: trial values and states from the optimizer, per-class metrics from ``metrics.json``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trial_contract.failures import one_line

from .model import Study, Trial

# Why a trial ended, in the words of the thesis (section 3.5) and of the trial states.
COMPLETED, EARLY, NONCONVERGENCE = "completed", "early stopping", "nonconvergence filtering"
STUDY_STOPPED, FAILED, INFEASIBLE, RUNNING, PENDING = "study stopped", "failed", "infeasible", "running", "pending"


def why_stopped(t: Trial) -> str:
    if t.state == "SUCCEEDED":
        return COMPLETED
    if t.state == "STOPPED_EARLY":
        if t.stop_reason.startswith("nonconvergence"):
            return NONCONVERGENCE
        if t.stop_reason.startswith("early stopping"):
            return EARLY
        return STUDY_STOPPED if t.stop_reason.startswith("study") else t.stop_reason
    return {"FAILED": FAILED, "INFEASIBLE": INFEASIBLE, "RUNNING": RUNNING}.get(t.state, PENDING)


def epochs_by_step(t: Trial) -> dict[str, int]:
    """Epochs the counting attempt ran, per step, in the task's step order."""
    counts: dict[str, int] = {}
    for m in t.final_measurements():
        counts[m.step] = counts.get(m.step, 0) + 1
    order = list(t.step_limits())
    return dict(sorted(counts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def duration(t: Trial, now: float) -> float | None:
    """Seconds from the first lease to the end (to ``now`` while running); None before any lease."""
    if not t.started:
        return None
    return max(0.0, (t.ended or now) - t.started)


def trials_table(study: Study) -> list[dict[str, Any]]:
    names = {p.index: p.name for p in study.phases}
    rows = []
    for t in sorted(study.trials, key=lambda t: t.number):
        steps = epochs_by_step(t)
        rows.append({
            "trial": t.number, "id": t.id, "phase": names.get(t.phase, str(t.phase)), "state": t.state,
            "parameters": dict(sorted(t.parameters.items())), "value": t.value, "epochs": sum(steps.values()),
            "epochs_by_step": steps, "stopped": why_stopped(t), "detail": t.stop_reason or one_line(t.error),
            "duration_s": duration(t, study.read_at), "worker": t.worker_id, "attempt": t.attempt,
        })
    return rows


def summary(study: Study) -> dict[str, Any]:
    """The numbers ``saga study watch`` prints, from the same fields of the optimizer's study."""
    best = study.trial(study.best_trial_id)
    return {
        "study_id": study.id, "name": study.name, "state": study.state, "message": study.message,
        "strategy": study.strategy, "objective": study.objective_metric,
        "trials_finished": sum(p.trials_finished for p in study.phases),
        "trials_total": sum(p.budget for p in study.phases),
        "running": study.trial_counts.get("RUNNING", 0),
        "trial_counts": dict(sorted(study.trial_counts.items())),
        "current_phase": study.phases[study.current_phase].name if study.phases else "",
        "phases": [{"index": p.index, "name": p.name, "finished": p.trials_finished, "budget": p.budget,
                    "done": p.done, "best_trial_id": p.best_trial_id} for p in study.phases],
        "best": {"trial_id": best.id, "trial": best.number, "value": best.value,
                 "parameters": best.parameters} if best else None,
        "read_at": study.read_at,
    }


# The thesis's per-class columns (tables 4.10 and 4.13) and the keys of trainer_svc.evaluation.
PER_CLASS_COLUMNS = (("TP", "tp"), ("TN", "tn"), ("FP", "fp"), ("FN", "fn"), ("REC", "recall"),
                     ("PREC", "precision"), ("SPEC", "specificity"), ("ACC", "accuracy"), ("MCC", "mcc"),
                     ("F1", "f1"))


def per_class_table(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per class plus ``Average``: counts and accuracy are means over the classes, the
    ratios are the trainer's stored macro averages (the same means)."""
    per_class = evaluation["per_class"]
    rows = [{"class": name, **{col: per_class[name][key] for col, key in PER_CLASS_COLUMNS}}
            for name in evaluation["classes"]]
    macro = evaluation.get("macro", {})
    average: dict[str, Any] = {"class": "Average"}
    for col, key in PER_CLASS_COLUMNS:
        average[col] = macro[key] if key in macro else (sum(r[col] for r in rows) / len(rows) if rows else 0.0)
    return rows + [average]


def model_row(evaluation: dict[str, Any], label: str) -> dict[str, Any]:
    """The model's averages in the baselines' columns (``baselines.COLUMNS``)."""
    avg = per_class_table(evaluation)[-1]
    return {"method": label, "f1": avg["F1"], "accuracy": avg["ACC"], "mcc": avg["MCC"],
            "precision": avg["PREC"], "recall": avg["REC"], "specificity": avg["SPEC"]}


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], digits: int = 4) -> str:
    """A Markdown table of ``rows``; ``columns`` are (header, key) pairs."""
    head = "| " + " | ".join(h for h, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r.get(k), digits).replace("|", "\\|") for _, k in columns) + " |"
            for r in rows]
    return "\n".join([head, rule, *body]) + "\n"


def cell(v: Any, digits: int = 4) -> str:
    """How a value reads in a table: ratios and means with fixed decimals, parameters with four
    significant digits, '-' for none."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={x:.4g}" if isinstance(x, float) else f"{k}={x}" for k, x in v.items())
    return str(v)
