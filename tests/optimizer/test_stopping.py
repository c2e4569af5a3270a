"""Stopping rules decided centrally: nonconvergence filtering and early stopping (thesis 3.5)."""
from optimizer_svc.spec import Stopping
from optimizer_svc.stopping import CONTINUE, STOP_STEP, STOP_TRIAL, decide

SEED = Stopping()


def accs(*values):
    return [{"val_accuracy": v} for v in values]


def test_nonconvergence_stops_a_trial_below_half_after_five_epochs():
    assert decide(SEED, accs(0.1, 0.2, 0.3, 0.35)).decision == CONTINUE
    v = decide(SEED, accs(0.1, 0.2, 0.3, 0.35, 0.45))
    assert v.decision == STOP_TRIAL and "nonconvergence" in v.reason
    assert decide(SEED, accs(0.1, 0.2, 0.3, 0.35, 0.55)).decision == CONTINUE


def test_early_stopping_after_five_epochs_without_improvement():
    assert decide(SEED, accs(0.6, 0.7, 0.7, 0.7, 0.7, 0.69)).decision == CONTINUE
    v = decide(SEED, accs(0.6, 0.7, 0.7, 0.7, 0.7, 0.69, 0.7))
    assert v.decision == STOP_STEP and "early stopping" in v.reason


def test_rules_can_be_disabled_and_lower_is_better_for_losses():
    off = Stopping(nonconvergence=False, early_stopping=False)
    assert decide(off, accs(0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)).decision == CONTINUE
    loss = Stopping(nonconvergence=False, early_stopping_metric="val_loss", early_stopping_patience=2)
    hist = [{"val_loss": v} for v in (1.0, 0.8, 0.6)]
    assert decide(loss, hist).decision == CONTINUE
    hist += [{"val_loss": 0.7}, {"val_loss": 0.65}]
    assert decide(loss, hist).decision == STOP_STEP
