"""A study as the page's JSON, computed with the report's own functions (one definition of every
number the report and the dashboard both show).

``overview`` is cheap and refreshed on every live event: summary, trials table, per-epoch curves,
best-so-far per phase, parallel-coordinates data. ``insight`` is refreshed when a trial ends and
cached by the observations it depends on: parameter importance, the GP surrogate of 1–2-D phases
(the optimizer's own proposer, refit), and the best trial's per-class metrics, confusion matrix
and the dataset papers' baselines.
"""
from __future__ import annotations

import json
import math
from typing import Any

from report import tables
from report.baselines import baseline_rows, dataset_family
from report.convergence import convergence
from report.model import Study
from report.surrogate import surface

from .importance import importance


def _json_safe(v: Any) -> Any:
    """NaN and infinity are not JSON: they become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if hasattr(v, "tolist"):
        return _json_safe(v.tolist())
    return v


def curve_metric(study: Study) -> str:
    """The metric every trial's curve is drawn in: val_accuracy when reported (the report's choice)."""
    reported = any("val_accuracy" in m.metrics for t in study.trials for m in t.measurements)
    return "val_accuracy" if reported else study.objective_metric


def study_row(study: Study) -> dict[str, Any]:
    """One line of the studies page."""
    summary = tables.summary(study)
    failures = sum(n for state, n in study.trial_counts.items() if state in ("FAILED", "INFEASIBLE"))
    return _json_safe({**{k: summary[k] for k in ("study_id", "name", "state", "message", "strategy", "objective",
                                                  "trials_finished", "trials_total", "running", "current_phase")},
                       "best": summary["best"], "failures": failures, "created": study.created,
                       "maximize": study.maximize})


def overview(study: Study) -> dict[str, Any]:
    metric = curve_metric(study)
    rows = tables.trials_table(study)
    curves = []
    for t in sorted(study.trials, key=lambda t: t.number):
        points = [[i, m.metrics[metric]] for i, m in enumerate(t.final_measurements()) if metric in m.metrics]
        steps = [m.step for m in t.final_measurements()]
        if points:
            curves.append({"trial": t.number, "id": t.id, "phase": t.phase, "state": t.state, "points": points,
                           "steps": steps})
    phases = []
    for p in study.phases:
        c = convergence(study, p)
        phases.append({"index": p.index, "name": p.name, "budget": p.budget, "finished": p.trials_finished,
                       "done": p.done, "best_trial_id": p.best_trial_id, "space": p.space,
                       "trial_numbers": [t.number for t in study.phase_trials(p.index)],
                       "values": c.values, "best_so_far": c.best_so_far})
    return _json_safe({
        "summary": study_row(study), "spec": study.spec, "read_at": study.read_at,
        "objective": {"metric": study.objective_metric, "maximize": study.maximize},
        "curve_metric": metric, "phases": phases, "trials": rows, "curves": curves,
    })


def fingerprint(study: Study) -> str:
    """What ``insight`` depends on: the observations, infeasible trials and the best trial."""
    done = sorted((t.id, t.state, t.value) for t in study.trials if t.state not in ("PENDING", "RUNNING"))
    return json.dumps([study.best_trial_id, [p.space for p in study.phases], done], default=str)


def insight(study: Study, evaluation: dict[str, Any] | None, why: str) -> dict[str, Any]:
    phases = []
    for p in study.phases:
        imp, imp_why = importance(study, p)
        s, s_why = surface(study, p)
        phases.append({
            "index": p.index, "name": p.name,
            "importance": None if imp is None else {"parameters": imp.parameters, "importances": imp.importances,
                                                     "observations": imp.observations, "method": imp.method},
            "importance_note": imp_why,
            "surrogate": None if s is None else {
                "parameters": s.names, "axes": s.axes, "log_scale": s.log_scale, "mean": s.mean, "std": s.std,
                "ei": s.ei, "observed": s.observed, "next_point": s.next_point},
            "surrogate_note": s_why,
        })
    return _json_safe({"phases": phases, "evaluation": _evaluation(study, evaluation, why)})


def _evaluation(study: Study, evaluation: dict[str, Any] | None, why: str) -> dict[str, Any]:
    best = study.trial(study.best_trial_id)
    out: dict[str, Any] = {"trial_id": best.id if best else None, "trial": best.number if best else None,
                           "note": why, "splits": []}
    if evaluation is None:
        return out
    family = dataset_family(study.dataset_uri)
    for split in ("validation", "test"):
        ev = evaluation.get("evaluation", {}).get(split)
        if not ev:
            continue
        entry = {"split": split, "samples": ev.get("samples"), "accuracy": ev.get("accuracy"), "mcc": ev.get("mcc"),
                 "classes": ev.get("classes", []), "confusion_matrix": ev.get("confusion_matrix", []),
                 "per_class": tables.per_class_table(ev), "columns": [c for c, _ in tables.PER_CLASS_COLUMNS]}
        if family and split == "test":
            source, rows = baseline_rows(family)
            entry["baselines"] = {"source": source,
                                  "rows": [tables.model_row(ev, "This study's best model (test)")] + rows}
        out["splits"].append(entry)
    return out
