"""The seed's per-class metrics (Pogorelov et al., thesis 3.2): TP, TN, FP, FN, precision,
recall, specificity, accuracy, MCC and F1 per class (one-vs-rest), their macro averages, the
overall accuracy and multi-class MCC, and the confusion matrix. Computed with scikit-learn;
the result is a JSON-serialisable dict.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import confusion_matrix, matthews_corrcoef, precision_recall_fscore_support

PER_CLASS = ("tp", "tn", "fp", "fn", "precision", "recall", "specificity", "accuracy", "mcc", "f1",
             "support")


def classification_report(y_true: Sequence[int], y_pred: Sequence[int],
                           class_names: Sequence[str]) -> dict[str, Any]:
    """Metrics of predictions ``y_pred`` against labels ``y_true`` (class indices).

    Ratios with a zero denominator (a class never predicted or never present) are 0, as
    scikit-learn's ``zero_division=0``.
    """
    labels = list(range(len(class_names)))
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    total = int(cm.sum())
    per_class: dict[str, dict[str, float]] = {}
    for i, name in enumerate(class_names):
        tp = int(cm[i, i])
        fp = int(cm[:, i].sum()) - tp
        fn = int(cm[i, :].sum()) - tp
        tn = total - tp - fp - fn
        per_class[name] = {
            "tp": tp, "tn": tn, "fp": fp, "fn": fn,
            "precision": float(precision[i]), "recall": float(recall[i]),
            "specificity": tn / (tn + fp) if tn + fp else 0.0,
            "accuracy": (tp + tn) / total if total else 0.0,
            # An empty marginal makes MCC 0/0; scikit-learn returns 0 for it, but warns.
            "mcc": float(matthews_corrcoef(y_true == i, y_pred == i))
            if (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) else 0.0,
            "f1": float(f1[i]), "support": int(support[i]),
        }
    macro = {m: float(np.mean([c[m] for c in per_class.values()]))
             for m in ("precision", "recall", "specificity", "mcc", "f1")}
    return {
        "classes": list(class_names),
        "samples": total,
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "mcc": float(matthews_corrcoef(y_true, y_pred)) if total else 0.0,
        "macro": macro,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),  # rows: true class, columns: predicted class
    }


def predict_labels(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` over a dataset of ``(images, labels)`` batches."""
    trues, preds = [], []
    for images, labels in dataset:
        probs = model.predict_on_batch(images)
        preds.append(np.argmax(np.asarray(probs), axis=-1))
        trues.append(np.asarray(labels))
    if not trues:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(trues), np.concatenate(preds)


def evaluate(model: keras.Model, dataset: tf.data.Dataset, class_names: Sequence[str]) -> dict[str, Any]:
    """:func:`classification_report` of ``model`` on ``dataset``."""
    y_true, y_pred = predict_labels(model, dataset)
    return classification_report(y_true, y_pred, class_names)
