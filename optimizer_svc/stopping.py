"""Stopping rules, decided centrally from the epochs a trial reported (thesis section 3.5).

- Nonconvergence filtering, as the thesis's Listing 3.1: counted per epoch of a step, the number
  of consecutive epochs whose metric is under the threshold (over it, for a loss); one epoch that
  reaches the threshold resets the count. An epoch under the threshold once ``epochs`` (the
  listing's patience) epochs in a row already were stops the whole trial: with the seed's 5, a
  step whose epochs stay under 0.5 validation accuracy stops after its sixth epoch.
- Early stopping: no improvement of the metric for ``patience`` epochs ends the current step.
"""
from __future__ import annotations

from dataclasses import dataclass

from trial_contract.metrics import lower_is_better

from .spec import Stopping

CONTINUE, STOP_STEP, STOP_TRIAL = "continue", "stop_step", "stop_trial"


@dataclass(frozen=True)
class Verdict:
    decision: str
    reason: str = ""


def decide(rules: Stopping, step_history: list[dict[str, float]]) -> Verdict:
    """Decision after the last epoch of ``step_history`` (the metrics of one step, in epoch order)."""
    epochs = len(step_history)
    if rules.nonconvergence:
        m, threshold = rules.nonconvergence_metric, rules.nonconvergence_threshold
        seen = [h[m] for h in step_history if m in h]
        under = 0  # Listing 3.1's ``wait`` plus the current epoch
        for v in reversed(seen):
            if (v > threshold) if lower_is_better(m) else (v < threshold):
                under += 1
            else:
                break
        if under > rules.nonconvergence_epochs:
            side = "over" if lower_is_better(m) else "under"
            return Verdict(STOP_TRIAL, f"nonconvergence: {m} {side} {threshold:g} for {under} epochs in a row "
                                       f"(last {seen[-1]:.4g}; patience {rules.nonconvergence_epochs})")
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
