"""Stopping rules, decided centrally from the epochs a trial reported (thesis section 3.5).

- Nonconvergence filtering: a step whose metric has not reached the threshold within N epochs is
  hopeless; the whole trial stops (the seed: validation accuracy 0.5 within 5 epochs).
- Early stopping: no improvement of the metric for ``patience`` epochs ends the current step.
"""
from __future__ import annotations

from dataclasses import dataclass

from .spec import Stopping

CONTINUE, STOP_STEP, STOP_TRIAL = "continue", "stop_step", "stop_trial"


@dataclass(frozen=True)
class Verdict:
    decision: str
    reason: str = ""


def lower_is_better(metric: str) -> bool:
    return "loss" in metric or "error" in metric


def decide(rules: Stopping, step_history: list[dict[str, float]]) -> Verdict:
    """Decision after the last epoch of ``step_history`` (the metrics of one step, in epoch order)."""
    epochs = len(step_history)
    if rules.nonconvergence and epochs == rules.nonconvergence_epochs:
        m = rules.nonconvergence_metric
        seen = [h[m] for h in step_history if m in h]
        if seen:
            best = min(seen) if lower_is_better(m) else max(seen)
            failed = best > rules.nonconvergence_threshold if lower_is_better(m) else best < rules.nonconvergence_threshold
            if failed:
                return Verdict(STOP_TRIAL, f"nonconvergence: best {m} {best:.4g} did not reach "
                                           f"{rules.nonconvergence_threshold:g} within {epochs} epochs")
    if rules.early_stopping:
        m = rules.early_stopping_metric
        seen = [(i, h[m]) for i, h in enumerate(step_history) if m in h]
        if seen:
            sign = -1.0 if lower_is_better(m) else 1.0
            best_i, best_v = seen[0]
            for i, v in seen[1:]:
                if sign * (v - best_v) > rules.early_stopping_min_delta:
                    best_i, best_v = i, v
            if epochs - 1 - best_i >= rules.early_stopping_patience:
                return Verdict(STOP_STEP, f"early stopping: no improvement of {m} for "
                                          f"{epochs - 1 - best_i} epochs (best {best_v:.4g})")
    return Verdict(CONTINUE)
