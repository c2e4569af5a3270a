"""The recipe's optimizer and loss settings, as compile_for_step applies them."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from trainer_svc.models import SmoothedSparseCrossentropy, compile_for_step


def _tiny() -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


def test_momentum_reaches_sgd_and_rmsprop_weight_decay_every_optimizer() -> None:
    model = _tiny()
    for name in ("SGD", "RMSprop"):
        compile_for_step(model, name, 0.01, momentum=0.9, weight_decay=1e-3)
        assert model.optimizer.momentum == pytest.approx(0.9) and model.optimizer.weight_decay == pytest.approx(1e-3)
    compile_for_step(model, "Adam", 0.01, momentum=0.9, weight_decay=1e-3)  # momentum is not Adam's
    assert model.optimizer.weight_decay == pytest.approx(1e-3) and not hasattr(model.optimizer, "momentum")


def test_label_smoothing_smooths_integer_targets() -> None:
    y, confident = np.array([0]), np.array([[1.0 - 2e-6, 1e-6, 1e-6]], np.float32)
    plain = float(keras.losses.SparseCategoricalCrossentropy()(y, confident))
    smoothed = float(SmoothedSparseCrossentropy(0.3)(y, confident))
    assert plain < 1e-3 and smoothed > 1.0  # a confident right answer is penalised towards 0.8/0.1/0.1
    model = _tiny()
    compile_for_step(model, "Adam", 0.01, label_smoothing=0.3)
    model.fit(np.zeros((4, 4), np.float32), np.array([0, 1, 2, 0]), epochs=1, verbose=0)  # trains on int labels
