"""One report folder: ``index.html``, ``figures/*.png``, ``tables/*.md`` and ``tables/*.json``.

Takes a study already read (``source``), so it runs offline and the tests can call it directly.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_svc.baselines import BASELINES, compare

from . import figures, tables
from .baselines import baseline_rows, dataset_family
from .convergence import convergence
from .model import Study
from .page import Page
from .surrogate import surface
from .timing import time_table

TRIAL_COLUMNS = (("#", "trial"), ("phase", "phase"), ("state", "state"), ("parameters", "parameters"),
                 ("best value", "value"), ("epochs", "epochs"), ("why it stopped", "stopped"),
                 ("reason", "detail"), ("duration s", "duration_s"), ("worker", "worker"))
PER_CLASS = (("class", "class"),) + tuple((c, c) for c, _ in tables.PER_CLASS_COLUMNS)
VERSUS_COLUMNS = (("method", "method"), ("accuracy", "accuracy"), ("macro-F1", "macro_f1"))
BASELINE_COLUMNS = (("method", "method"), ("F1", "f1"), ("ACC", "accuracy"), ("MCC", "mcc"),
                    ("PREC", "precision"), ("REC", "recall"), ("SPEC", "specificity"))
TIME_COLUMNS = (("phase", "phase"), ("trials", "trials"), ("epochs", "epochs"), ("wall-clock s", "wall_clock_s"),
                ("worker-s", "worker_s"), ("GPU-s", "gpu_s"),
                ("epochs saved: early stopping", "saved_epochs_early_stopping"),
                ("epochs saved: nonconvergence", "saved_epochs_nonconvergence"),
                ("s saved: early stopping", "saved_s_early_stopping"),
                ("s saved: nonconvergence", "saved_s_nonconvergence"))
SPLITS = (("validation", "validation"), ("test", "test (held out: the optimizer never saw it)"))


@dataclass
class Report:
    out: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is not in the report, and why

    @property
    def index(self) -> Path:
        return self.out / "index.html"


def write_report(study: Study, evaluation: dict[str, Any] | None, out: Path, *,
                 evaluation_note: str = "", dataset_name: str | None = None) -> Report:
    """Writes the report of ``study`` into ``out``; ``evaluation`` is the best trial's ``metrics.json``."""
    report = Report(out)
    for folder, patterns in (("figures", ("*.png",)), ("tables", ("*.md", "*.json"))):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for old in (f for pattern in patterns for f in (out / folder).glob(pattern)):
            old.unlink()  # an earlier report's files: a section that is gone now must not linger
    metric = study.objective_metric
    curve_metric = "val_accuracy" if any("val_accuracy" in m.metrics for t in study.trials
                                         for m in t.measurements) else metric
    summary = tables.summary(study)
    page = Page(f"Saga report — {study.name}")
    _header(page, study, summary)
    _table(report, "summary", summary)

    page.heading("Best model")
    best = study.trial(study.best_trial_id)
    if best is None:
        page.paragraph("No trial has finished with a result yet.", "note")
    else:
        page.paragraph(f"The trial with the best {metric}. Its figures on the test split are the ones to quote: "
                       "no choice of the optimizer was made on those images.")
        page.facts([("trial", f"{best.number} ({best.id})"), (f"best {metric}", best.value),
                    *sorted(best.parameters.items())])
        _versus_baselines(page, report, best.metrics)
        _evaluation(page, report, evaluation, evaluation_note, dataset_name or study.dataset_uri)

    page.heading("Trials")
    page.paragraph("Every trial the optimizer created, in order. 'best value' is the best "
                   f"{metric} a trial reached in any epoch; 'why it stopped' names the rule that ended it; "
                   "'reason' is the rule's own words, or the error of a failed or infeasible trial.")
    trials = tables.trials_table(study)
    page.table(trials, TRIAL_COLUMNS, text_columns=("phase", "state", "parameters", "stopped", "detail", "worker"))
    _table(report, "trials", trials, TRIAL_COLUMNS)

    page.heading(f"{curve_metric} per epoch")
    if any(t.measurements for t in study.trials):
        page.figure(_fig(report, "curves_by_epoch", figures.curves_by_epoch, study, curve_metric),
                    f"{curve_metric} after every epoch, one line per trial (thesis figure 4.1)")
        page.figure(_fig(report, "curves_by_time", figures.curves_by_time, study, curve_metric),
                    "The same against wall-clock time, phases marked (thesis figure 4.2)")
    else:
        _note(report, page, "no trial has reported an epoch yet")

    conv_json = []
    for phase in study.phases:
        page.heading(f"Phase {phase.index}: {phase.name}")
        page.paragraph(f"{phase.trials_finished} of {phase.budget} trials finished"
                       + ("; done." if phase.done else "."), "note")
        c = convergence(study, phase)
        conv_json.append(dataclasses.asdict(c))
        if c.iterations:
            page.figure(_fig(report, f"convergence_{phase.index}_{phase.name}", figures.convergence_figure, c,
                             metric), "Left: how far each proposal moved from the one before; right: the best "
                                      "value so far (thesis figure 4.6)")
        else:
            _note(report, page, f"phase {phase.name}: no trials yet")
        s, why = surface(study, phase)
        if s is not None:
            _table(report, f"surrogate_{phase.index}_{phase.name}", {
                "parameters": s.names, "axes": s.axes, "log_scale": s.log_scale, "mean": s.mean, "std": s.std,
                "expected_improvement": s.ei, "observations": s.observed, "next_point": s.next_point})
            page.figure(_fig(report, f"surrogate_{phase.index}_{phase.name}", figures.surrogate_figure, s, metric),
                        "What the Gaussian process believes: mean and uncertainty of the objective over the "
                        "searched parameters, and the expected improvement that picks the next trial "
                        "(thesis figure 4.9)")
        else:
            _note(report, page, f"phase {phase.name}: no surrogate plot: {why}")
    _table(report, "convergence", conv_json)

    page.heading("Time")
    page.paragraph("Wall-clock from the phase's first trial start to its last end; worker-seconds add up "
                   "every trial's duration; GPU-seconds multiply them by the GPUs the trainer used. 'Saved' "
                   "are the epochs the stopping rules cut, at the trial's own seconds per epoch (an estimate).")
    times = time_table(study)
    page.table(times, TIME_COLUMNS, text_columns=("phase",), digits=1)
    _table(report, "time", times, TIME_COLUMNS)
    if any(r["worker_s"] for r in times[:-1]):
        page.figure(_fig(report, "time", figures.time_figure, times), "Compute spent and saved per phase")

    if report.notes:
        page.heading("Not in this report")
        page.parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.notes) + "</ul>")
    report.index.write_text(page.render(), encoding="utf-8")
    return report


def _header(page: Page, study: Study, summary: dict[str, Any]) -> None:
    page.heading(f"Saga report — {study.name}", 1)
    state = study.state.lower() + (f" ({study.message})" if study.message else "")
    if study.state == "ACTIVE":
        page.paragraph("The study is still running: this report shows what exists at the time below.", "note")
    best = summary["best"]
    page.facts([("study", study.id), ("state", state), ("strategy", study.strategy),
                ("dataset", study.dataset_uri), ("objective", f"{study.objective_metric} "
                                                              f"({'maximize' if study.maximize else 'minimize'})"),
                ("trials finished", f"{summary['trials_finished']}/{summary['trials_total']}"),
                ("running", summary["running"]),
                ("best", f"{best['value']:.4f} (trial {best['trial']}, {best['trial_id']})" if best else "none yet"),
                ("read at", _when(study.read_at))])


def _versus_baselines(page: Page, report: Report, metrics: dict[str, float]) -> None:
    """The best trial beside the baselines its trainer computed on the same splits, with a warning
    when it does not beat them or is near chance (trainer_svc.baselines)."""
    comparison = compare(metrics)
    if comparison is None:
        _note(report, page, "no baselines: the best trial's trainer reported none")
        return
    page.heading(f"Beside baselines on the same splits ({comparison.split})", 3)
    rows = [{"method": "This study's best model", **comparison.trial}]
    rows += [{"method": BASELINES[name], **m} for name, m in comparison.baselines.items()]
    for warning in comparison.warnings:
        page.paragraph(f"Warning: {warning}.", "warning")
    page.table(rows, VERSUS_COLUMNS, text_columns=("method",), row_class={"This study's best model": "model"},
               key="method", digits=3)
    _table(report, "versus_baselines", rows, VERSUS_COLUMNS)


def _evaluation(page: Page, report: Report, evaluation: dict[str, Any] | None, note: str, dataset: str) -> None:
    if evaluation is None:
        _note(report, page, f"per-class metrics and confusion matrices: {note}")
        return
    family = dataset_family(dataset)
    for split, title in SPLITS:
        ev = evaluation["evaluation"].get(split)
        if not ev:
            _note(report, page, f"no {split} evaluation in the best trial's metrics.json")
            continue
        page.heading(f"On {title}", 3)
        rows = tables.per_class_table(ev)
        page.paragraph(f"{ev['samples']} images; accuracy {ev['accuracy']:.4f}, MCC {ev['mcc']:.4f}. "
                       "Per class, one class against the rest (thesis table 4.10).")
        page.table(rows, PER_CLASS, text_columns=("class",), row_class={"Average": "average"}, key="class")
        _table(report, f"per_class_{split}", rows, PER_CLASS)
        page.figure(_fig(report, f"confusion_{split}", figures.confusion_figure, ev["confusion_matrix"],
                         ev["classes"], f"Confusion matrix, {split}"),
                    f"Confusion matrix on the {split} split: rows are the true class, columns the predicted one")
        if family and split == "test":
            source, base = baseline_rows(family)
            rows = [tables.model_row(ev, "This study's best model (test)")] + base
            page.heading(f"Against the {family.capitalize()} baselines", 3)
            page.paragraph(f"Averages over all classes. Baselines: {source}.", "note")
            page.table(rows, BASELINE_COLUMNS, text_columns=("method",),
                       row_class={"This study's best model (test)": "model"}, key="method", digits=3)
            _table(report, f"baselines_{family}", rows, BASELINE_COLUMNS)


def _fig(report: Report, name: str, draw, *args) -> Path:
    path = draw(*args, report.out / "figures" / f"{name}.png")
    report.figures.append(path)
    return path


def _table(report: Report, name: str, rows: Any, columns=None) -> None:
    path = report.out / "tables" / f"{name}.json"
    path.write_text(json.dumps(rows, indent=1, default=_plain), encoding="utf-8")
    report.tables.append(path)
    if columns is not None:
        md = report.out / "tables" / f"{name}.md"
        md.write_text(tables.markdown(rows, columns), encoding="utf-8")
        report.tables.append(md)


def _plain(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"cannot write {type(v).__name__} as JSON")


def _note(report: Report, page: Page, text: str) -> None:
    report.notes.append(text)
    page.paragraph(text, "note")


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
