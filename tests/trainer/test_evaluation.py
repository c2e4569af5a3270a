"""The seed's metrics against values computed by hand on a small confusion example."""
from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer_svc.evaluation import classification_report, evaluate

Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 1]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0, 2, 1]
# confusion matrix (rows true, columns predicted): [[2,1,0],[0,2,1],[1,0,3]]


def test_per_class_and_macro_metrics_match_hand_computation() -> None:
    report = classification_report(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 3]]
    a, b, c = (report["per_class"][k] for k in "abc")
    assert (a["tp"], a["tn"], a["fp"], a["fn"]) == (2, 6, 1, 1)
    assert (b["tp"], b["tn"], b["fp"], b["fn"]) == (2, 6, 1, 1)
    assert (c["tp"], c["tn"], c["fp"], c["fn"]) == (3, 5, 1, 1)
    assert a["precision"] == pytest.approx(2 / 3) and a["recall"] == pytest.approx(2 / 3)
    assert a["specificity"] == pytest.approx(6 / 7) and a["accuracy"] == pytest.approx(0.8)
    assert a["f1"] == pytest.approx(2 / 3)
    assert a["mcc"] == pytest.approx((2 * 6 - 1 * 1) / math.sqrt(3 * 3 * 7 * 7))
    assert c["precision"] == pytest.approx(0.75) and c["specificity"] == pytest.approx(5 / 6)
    assert c["f1"] == pytest.approx(0.75)
    assert c["mcc"] == pytest.approx((3 * 5 - 1 * 1) / math.sqrt(4 * 4 * 6 * 6))
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["mcc"] == pytest.approx(36 / 66)  # Gorodkin's multi-class MCC
    assert report["macro"]["f1"] == pytest.approx((2 / 3 + 2 / 3 + 0.75) / 3)
    assert report["macro"]["specificity"] == pytest.approx((6 / 7 + 6 / 7 + 5 / 6) / 3)
    assert report["samples"] == 10 and a["support"] == 3
    json.dumps(report, allow_nan=False)  # serialisable, no NaN


def test_class_never_seen_nor_predicted_scores_zero_not_nan() -> None:
    report = classification_report([0, 1, 1], [0, 1, 0], ["a", "b", "never"])
    never = report["per_class"]["never"]
    assert (never["tp"], never["tn"], never["fp"], never["fn"]) == (0, 3, 0, 0)
    assert never["precision"] == 0.0 and never["recall"] == 0.0 and never["f1"] == 0.0
    assert never["specificity"] == 1.0 and never["mcc"] == 0.0
    json.dumps(report, allow_nan=False)
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        classification_report([0, 1, 1], [0, 1], ["a", "b"])


def test_evaluate_runs_model_over_dataset() -> None:
    # A fixed "model" that predicts the class stored in the first pixel.
    inputs = keras.Input((2, 2, 1))
    outputs = keras.layers.Lambda(lambda x: tf.one_hot(tf.cast(x[:, 0, 0, 0], tf.int32), 3))(inputs)
    model = keras.Model(inputs, outputs)
    images = np.array(Y_PRED, np.float32).reshape(-1, 1, 1, 1) * np.ones((1, 2, 2, 1), np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, np.array(Y_TRUE, np.int32))).batch(4)
    report = evaluate(model, ds, ["a", "b", "c"])
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 3]]
