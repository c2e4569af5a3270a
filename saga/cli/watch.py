"""``saga study watch``: one line per trial event (parameters when a trial starts, its score and why
it ended when it finishes, every epoch of running trials), a progress line with an estimate of the
time left, and a summary with the best parameters and the commands to run next.

On a terminal the progress line is redrawn in place under the event lines; in a log it is printed
whenever it changes after a trial ends or a phase starts.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import TextIO

from optimizer_svc.client import OptimizerClient, parameters
from saga.v1 import optimizer_pb2 as pb

DEFAULT_OPTIMIZER = "localhost:50051"


def state_name(value: int, enum=pb.TrialState) -> str:
    return enum.Name(value).split("_", 1)[1].lower()


def fmt_value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def params_text(trial: pb.Trial) -> str:
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(parameters(trial).items()))


def duration_text(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


@dataclass
class Estimate:
    """Time left: the mean duration of the trials that ended, times the trials left, divided by the
    trials that run at once. A rough guide, labelled as such; none before the first trial ends."""

    durations: list[float] = field(default_factory=list)

    def add(self, trial: pb.Trial) -> None:
        if trial.start_time.seconds and trial.end_time.seconds:
            self.durations.append(max(0.0, _seconds(trial.end_time) - _seconds(trial.start_time)))

    def left(self, remaining: int, parallel: int) -> float | None:
        if not self.durations or remaining <= 0:
            return None
        mean = sum(self.durations) / len(self.durations)
        return mean * math.ceil(remaining / max(1, parallel))


class Watcher:
    """Prints a study's progress from its WatchStudy stream until the study ends."""

    def __init__(self, client: OptimizerClient, study_id: str, out: TextIO | None = None,
                 tty: bool | None = None, optimizer: str = DEFAULT_OPTIMIZER):
        self.client = client
        self.study_id = study_id
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.optimizer = optimizer
        self.estimate = Estimate()
        self.tasks: dict[str, dict] = {}
        self.shown: dict[str, int] = {}  # trial id -> epochs already printed (of its current attempt)
        self._status = ""
        self._printed = ""  # the status line last printed as a line of its own (not on a terminal)
        self._open: set[str] = set()  # trials seen starting or running whose end has not been printed
        self._parallel = 1
        self._objective = "value"

    # -- output
    def _print(self, line: str) -> None:
        if self.tty and self._status:
            print("\r" + " " * min(len(self._status), 160) + "\r", end="", file=self.out)
        print(line, file=self.out, flush=True)
        if self.tty and self._status:
            print(self._status, end="", file=self.out, flush=True)
        self._printed = ""  # in a log, the next progress line is printed even if unchanged: it is the newest

    def _set_status(self, line: str, force_line: bool) -> None:
        if self.tty:
            pad = max(0, len(self._status) - len(line))
            print("\r" + line + " " * pad, end="", file=self.out, flush=True)
        elif force_line and line != self._printed:
            print(line, file=self.out, flush=True)
            self._printed = line
        self._status = line

    # -- the stream
    def run(self) -> pb.Study:
        study = self.client.get_study(self.study_id)
        spec = json.loads(study.spec_json) if study.spec_json else {}
        self._parallel = int(spec.get("budget", {}).get("parallel_trials", 1))
        self._objective = spec.get("objective", {}).get("metric", "value")
        for t in self.client.list_trials(self.study_id):
            self.estimate.add(t)
        for ev in self.client.watch(self.study_id):
            study = ev.study
            line = self._event_line(ev)
            if line:
                self._print(line)
            if len(self._open) > study.trial_counts.get("TRIAL_RUNNING", 0):
                self._catch_up()  # a trial ended whose event this stream missed
            self._set_status(self.status_line(ev), ev.event in ("snapshot", "trial_finished", "phase_started",
                                                                 "study_finished"))
        # The stream may end before an event that carries the final counts (and a slow reader's
        # oldest events are dropped): every trial shown running gets its closing line, and the last
        # status line is the study as stored, so a finished study always shows its full bar.
        self._catch_up()
        final = self.client.get_study(self.study_id)
        last = pb.WatchStudyResponse(study=final)
        best = self.client.best_trial(self.study_id)
        if best is not None:
            last.best_trial.CopyFrom(best)
        self._set_status(self.status_line(last), True)
        if self.tty:
            print(file=self.out)
        self._status = ""
        return final

    def _catch_up(self) -> None:
        """The closing line of every trial shown running that has ended meanwhile."""
        if self._open:
            for t in self.client.list_trials(self.study_id):
                if t.id in self._open and t.state not in (pb.TRIAL_PENDING, pb.TRIAL_RUNNING):
                    self._print(self._finished_line(t))

    def status_line(self, ev: pb.WatchStudyResponse) -> str:
        study = ev.study
        total = sum(p.budget for p in study.phases)
        done = sum(p.trials_finished for p in study.phases)
        phase = study.phases[study.current_phase]
        running = study.trial_counts.get("TRIAL_RUNNING", 0)
        best = f"best {ev.best_trial.value:.4f} ({ev.best_trial.id})" if ev.HasField("best_trial") else "best -"
        line = (f"{_bar(done, total)} phase {phase.name} {phase.trials_finished}/{phase.budget}, "
                f"running {running}, {best}")
        if study.state == pb.STUDY_ACTIVE:
            left = self.estimate.left(total - done, min(self._parallel, max(1, running)))
            if left is not None:
                line += f", about {duration_text(left)} left"
        return line

    def _event_line(self, ev: pb.WatchStudyResponse) -> str:
        trial = ev.trial
        if ev.event == "phase_started":
            phase = ev.study.phases[ev.study.current_phase]
            return f"phase {phase.index} '{phase.name}' started: {phase.budget} trials"
        if ev.event == "trial_leased":
            self._open.add(trial.id)
            return f"trial {trial.number} ({trial.id}) started on {trial.worker_id or '?'}: {params_text(trial)}"
        if ev.event == "progress":
            self._open.add(trial.id)
            return self._epoch_line(trial)
        if ev.event == "trial_finished":
            return self._finished_line(trial)
        if ev.event == "trial_requeued":
            self.shown.pop(trial.id, None)  # the next attempt reports from its first epoch
            return f"trial {trial.number} re-queued: {first_line(trial.error) or 'lease lost'}"
        return ""

    def _finished_line(self, trial: pb.Trial) -> str:
        self.estimate.add(trial)
        self.tasks.pop(trial.id, None)
        self.shown.pop(trial.id, None)
        self._open.discard(trial.id)
        value = f"{self._objective} {trial.value:.4f}" if trial.has_value else "no value"
        why = trial.stop_reason or first_line(trial.error)
        return (f"trial {trial.number} {state_name(trial.state)}: {value}" + (f" ({why})" if why else "")
                + f" [{params_text(trial)}]")

    def _epoch_line(self, trial: pb.Trial) -> str:
        """Every epoch the trial reported since the last line about it (events can arrive after several
        epochs of a fast trial, or after a re-queue), each once, in order."""
        full = self.client.get_trial(trial.id)
        measured = [m for m in full.measurements if m.step and m.metrics and m.attempt == full.attempt]
        shown = self.shown.get(trial.id, 0)
        if len(measured) <= shown:
            return ""  # a heartbeat, or an epoch already shown
        self.shown[trial.id] = len(measured)
        task = self.tasks.setdefault(trial.id, json.loads(full.task_json) if full.task_json else {})
        limits = {s.get("name"): s.get("max_epochs") for s in task.get("steps", [])}
        lines = []
        for m in measured[shown:]:
            values = ", ".join(f"{k} {m.metrics[k]:.4f}" for k in (self._objective, "val_loss", "loss")
                               if k in m.metrics)
            limit = limits.get(m.step)
            lines.append(f"  trial {trial.number} {m.step} epoch {m.epoch + 1}" + (f"/{limit}" if limit else "")
                         + f": {values}")
        return "\n".join(lines)


def summary(client: OptimizerClient, study: pb.Study, optimizer: str = DEFAULT_OPTIMIZER) -> list[str]:
    """The closing lines: how the study ended, its best trial with every parameter, what to run next."""
    spec = json.loads(study.spec_json) if study.spec_json else {}
    metric = spec.get("objective", {}).get("metric", "value")
    total = sum(p.budget for p in study.phases)
    done = sum(p.trials_finished for p in study.phases)
    counts = ", ".join(f"{k.removeprefix('TRIAL_').lower()} {v}" for k, v in sorted(study.trial_counts.items()))
    took = _seconds(study.update_time) - _seconds(study.create_time)
    lines = [f"study {study.id} {state_name(study.state, pb.StudyState)}"
             + (f": {study.message}" if study.message else "")
             + f" — {done}/{total} trials finished ({counts or 'none'}) in {duration_text(took)}"]
    best = client.best_trial(study.id)
    if best is None:
        lines.append("no trial finished with a result")
        return lines
    lines.append(f"best {metric} {best.value:.4f}: trial {best.number} ({best.id}), phase {best.phase}")
    params = parameters(best)
    width = max(len(k) for k in params) if params else 0
    lines += [f"  {k:<{width}}  {fmt_value(v)}" for k, v in sorted(params.items())]
    where = "" if optimizer == DEFAULT_OPTIMIZER else f" --optimizer {optimizer}"
    lines += ["next:",
              f"  saga study trials {study.id}{where}            # every trial as a table (--csv for a file)",
              f"  saga report {study.id} --out report-{study.id}{where}   # the thesis's figures and tables",
              f"  saga export {study.id} --model-name NAME --to MODEL_BASE_URI{where}   # serve the best model"]
    return lines


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else 0
    return "[" + "#" * filled + "-" * (width - filled) + f"] {done}/{total}"


def watch(client: OptimizerClient, study_id: str, optimizer: str = DEFAULT_OPTIMIZER,
          out: TextIO | None = None) -> int:
    """Watches to the end, prints the summary; 0 when the study completed, 1 otherwise."""
    out = out or sys.stdout
    study = Watcher(client, study_id, out, optimizer=optimizer).run()
    for line in summary(client, study, optimizer):
        print(line, file=out, flush=True)
    return 0 if study.state == pb.STUDY_COMPLETED else 1
