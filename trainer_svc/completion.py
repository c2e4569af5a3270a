"""Completing a trial so that the worker never dies on the optimizer's answer.

A completion the optimizer refuses as invalid (a SUCCEEDED trial without the objective metric, a
value it cannot store) is sent again as FAILED with the refusal as its reason, so the user sees why
in ``saga study status`` and the worker goes on to the next trial. A completion under a lost lease
is dropped: the optimizer already re-queued or finished the trial. An optimizer outage is waited
out (until SIGTERM aborts the client's retries).
"""
from __future__ import annotations

import logging

from optimizer_svc.client import OptimizerClient
from optimizer_svc.errors import FailedPrecondition, InvalidArgument, NotFound, OptimizerError
from trial_contract import one_line

log = logging.getLogger(__name__)


def complete(client: OptimizerClient, trial_id: str, lease_id: str, outcome: str, metrics: dict[str, float],
             artifacts: dict[str, str], error: str) -> str:
    """Sends the completion; returns the outcome the optimizer recorded, or ``"lost"``."""
    try:
        client.complete_trial(trial_id, lease_id, outcome, metrics=metrics, artifacts=artifacts,
                              error=one_line(error), retry_for=None)
        return outcome
    except (FailedPrecondition, NotFound) as e:
        log.warning("trial %s: completion refused (%s); the optimizer re-ran or dropped it", trial_id, e)
        return "lost"
    except InvalidArgument as e:
        if outcome == "FAILED":
            raise  # nothing simpler to send: a bug in the worker, not in the trial
        reason = one_line(f"the optimizer refused the {outcome} completion: {e}")
        log.error("trial %s: %s", trial_id, reason)
        return complete(client, trial_id, lease_id, "FAILED", {}, {}, reason)
    except OptimizerError as e:  # not delivered before SIGTERM: the trial runs again elsewhere
        log.error("trial %s: completion %s not delivered: %s", trial_id, outcome, e)
        return "lost"
