"""Stopping rules decided centrally: nonconvergence filtering and early stopping (thesis 3.5)."""
from optimizer_svc.spec import Stopping
from optimizer_svc.stopping import CONTINUE, STOP_STEP, STOP_TRIAL, decide

SEED = Stopping()


def accs(*values):
    return [{"val_accuracy": v} for v in values]


def test_nonconvergence_is_listing_3_1_patience_counted_per_epoch():
    # Listing 3.1 with patience 5: five epochs under 0.5 are allowed, the sixth in a row stops.
    assert decide(SEED, accs(0.1, 0.2, 0.3, 0.35, 0.45)).decision == CONTINUE
    v = decide(SEED, accs(0.1, 0.2, 0.3, 0.35, 0.45, 0.4))
    assert v.decision == STOP_TRIAL and "nonconvergence" in v.reason and "6 epochs in a row" in v.reason
    assert decide(SEED, accs(0.1, 0.2, 0.3, 0.35, 0.45, 0.55)).decision == CONTINUE


def test_nonconvergence_count_resets_when_the_threshold_is_reached():
    # Reaching 0.5 once resets the count; falling back under it starts counting again, at any epoch.
    rules = Stopping(early_stopping=False)
    assert decide(rules, accs(0.1, 0.1, 0.1, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1)).decision == CONTINUE
    late = decide(rules, accs(0.6, 0.7, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3))
    assert late.decision == STOP_TRIAL and "6 epochs in a row" in late.reason


def test_nonconvergence_of_a_loss_counts_epochs_over_the_threshold():
    rules = Stopping(nonconvergence_metric="val_loss", nonconvergence_threshold=1.0, nonconvergence_epochs=2,
                     early_stopping=False)
    hist = [{"val_loss": v} for v in (2.0, 1.5)]
    assert decide(rules, hist).decision == CONTINUE
    assert decide(rules, hist + [{"val_loss": 0.9}]).decision == CONTINUE
    assert decide(rules, hist + [{"val_loss": 1.2}]).decision == STOP_TRIAL


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
