"""Following a study to its end while its worker processes are watched: the WatchStudy stream is
read in a thread, so that a dead trainer or a stalled study is noticed instead of waiting forever."""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from optimizer_svc.client import OptimizerClient, parameters
from saga.local.processes import Supervisor
from saga.v1 import optimizer_pb2 as pb

_DONE = object()


class StudyError(RuntimeError):
    """The study did not complete; the message says why (study message, trial errors)."""


def describe_params(trial: pb.Trial) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in sorted(parameters(trial).items()))


def _state(value: int, enum: type) -> str:
    return enum.Name(value).split("_", 1)[1].lower()


def follow_study(client: OptimizerClient, study_id: str, supervisor: Supervisor, stall_timeout_s: float,
                 say: Callable[[str], None]) -> pb.Study:
    """Prints one line per meaningful event until the study ends; returns the final study.
    ProcessError if a supervised process dies, StudyError if the study fails or makes no progress
    (no event: no lease, epoch, completion) for ``stall_timeout_s``. A slow machine is no failure:
    there is no limit on the study's total time."""
    events: queue.Queue = queue.Queue()

    def pump() -> None:
        try:
            for ev in client.watch(study_id):
                events.put(ev)
            events.put(_DONE)
        except Exception as e:  # handed to the main thread, which reports it
            events.put(e)

    threading.Thread(target=pump, name="watch", daemon=True).start()
    last_progress = time.monotonic()
    study = client.get_study(study_id)
    while True:
        if time.monotonic() - last_progress > stall_timeout_s:
            raise StudyError(f"study {study_id} made no progress for {stall_timeout_s:.0f}s (no trial was leased, "
                             f"reported an epoch or finished); see the trainers' logs")
        supervisor.check()
        try:
            ev = events.get(timeout=0.5)
        except queue.Empty:
            continue
        last_progress = time.monotonic()
        if ev is _DONE:
            break
        if isinstance(ev, Exception):
            raise ev
        study = ev.study
        line = _event_line(client, ev)
        if line:
            say(line)
    study = client.get_study(study_id)
    if study.state != pb.STUDY_COMPLETED:
        failed = [t for t in client.list_trials(study_id) if t.error]
        errors = "".join(f"\n  trial {t.id} ({_state(t.state, pb.TrialState)}): {t.error.strip().splitlines()[0]}"
                         for t in failed[-3:])
        raise StudyError(f"study {study_id} ended {_state(study.state, pb.StudyState)}: "
                         f"{study.message or 'no message'}{errors}")
    return study


def _event_line(client: OptimizerClient, ev: pb.WatchStudyResponse) -> str:
    study, trial = ev.study, ev.trial
    done = sum(p.trials_finished for p in study.phases)
    total = sum(p.budget for p in study.phases)
    head = f"  [{done}/{total}]"
    if ev.event == "phase_started":
        phase = study.phases[study.current_phase]
        return f"{head} phase {phase.index} '{phase.name}' started ({phase.budget} trials)"
    if ev.event == "trial_leased":
        return f"{head} trial {trial.id} -> {trial.worker_id}: {describe_params(trial)}"
    if ev.event == "progress":
        full = client.get_trial(trial.id)
        measured = [m for m in full.measurements if m.step and m.metrics]
        if not measured:
            return ""  # a heartbeat
        m = measured[-1]
        shown = ", ".join(f"{k} {m.metrics[k]:.3f}" for k in ("loss", "accuracy", "val_accuracy") if k in m.metrics)
        return f"{head} trial {trial.id} {m.step} epoch {m.epoch + 1}: {shown}"
    if ev.event == "trial_finished":
        value = f"val {trial.value:.3f}" if trial.has_value else "no value"
        extra = f" ({trial.stop_reason or trial.error.strip().splitlines()[0]})" if (trial.stop_reason or trial.error) else ""
        best = f"; best so far {ev.best_trial.value:.3f} ({ev.best_trial.id})" if ev.HasField("best_trial") else ""
        return f"{head} trial {trial.id} {_state(trial.state, pb.TrialState)}: {value}{extra}{best}"
    if ev.event == "trial_requeued":
        reason = trial.error.strip().splitlines()[0] if trial.error else "lease lost"
        return f"{head} trial {trial.id} re-queued: {reason}"
    return ""
