"""Time accounting (thesis figures 4.2, 4.4): wall-clock, worker- and GPU-seconds per phase and for the
strategy, and the compute the stopping rules saved.

- wall-clock: first lease of the phase to its last end (to the read time while trials run);
- worker-seconds: the sum of trial durations (first lease to end), one worker per trial;
- GPU-seconds: worker-seconds times the GPUs each trainer reported (metric ``gpus``); 0 on CPU workers;
- saved: the epochs a stopping rule cut (each step's ``max_epochs`` minus the epochs it ran) times the
  trial's own mean seconds per epoch, split by rule. An estimate: the epochs were never run.
"""
from __future__ import annotations

from typing import Any

from .model import Study, Trial
from .tables import NONCONVERGENCE, duration, epochs_by_step, why_stopped


def saved_epochs(t: Trial) -> dict[str, int]:
    """``{"early stopping": n, "nonconvergence filtering": m}`` epochs the rules cut from ``t``."""
    saved = {"early stopping": 0, NONCONVERGENCE: 0}
    if not t.observed:
        return saved
    ran = epochs_by_step(t)
    limits = t.step_limits()
    ran_steps = [s for s in limits if ran.get(s)]
    last = ran_steps[-1] if ran_steps else None
    filtered = why_stopped(t) == NONCONVERGENCE
    after_last = False
    for step, limit in limits.items():
        cut = max(0, limit - ran.get(step, 0))
        if filtered and (step == last or after_last):
            saved[NONCONVERGENCE] += cut
        elif ran.get(step):
            saved["early stopping"] += cut
        after_last = after_last or step == last
    return saved


def _row(label: str, trials: list[Trial], now: float) -> dict[str, Any]:
    started = [t.started for t in trials if t.started]
    ends = [t.ended or now for t in trials if t.started]
    worker_s = gpu_s = 0.0
    saved_epochs_total = {"early stopping": 0, NONCONVERGENCE: 0}
    saved_s = {"early stopping": 0.0, NONCONVERGENCE: 0.0}
    epochs = 0
    for t in trials:
        d = duration(t, now) or 0.0
        worker_s += d
        gpu_s += d * t.metrics.get("gpus", 0.0)
        ran = sum(epochs_by_step(t).values())
        epochs += ran
        per_epoch = d / ran if ran and t.ended else 0.0
        for rule, n in saved_epochs(t).items():
            saved_epochs_total[rule] += n
            saved_s[rule] += n * per_epoch
    return {
        "phase": label, "trials": len(trials), "epochs": epochs,
        "wall_clock_s": (max(ends) - min(started)) if started else 0.0,
        "worker_s": worker_s, "gpu_s": gpu_s,
        "saved_epochs_early_stopping": saved_epochs_total["early stopping"],
        "saved_epochs_nonconvergence": saved_epochs_total[NONCONVERGENCE],
        "saved_s_early_stopping": saved_s["early stopping"],
        "saved_s_nonconvergence": saved_s[NONCONVERGENCE],
    }


def time_table(study: Study) -> list[dict[str, Any]]:
    """One row per phase, then one for the whole strategy."""
    rows = [_row(p.name, study.phase_trials(p.index), study.read_at) for p in study.phases]
    rows.append(_row(f"all ({study.strategy})", list(study.trials), study.read_at))
    return rows
