"""The objectives of `make bench-peers`: numpy and scikit-learn only, so every tuner's environment imports them.

Each task has a search space in Saga's spec form (what ``optimizer_svc.space.parse_param`` reads) and
``loss(point) -> float`` to minimise. Synthetic functions have their optimum shifted off the centre
of the box (as BBOB does), so no tuner wins by proposing the middle of every range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Task:
    name: str
    space: dict[str, dict[str, Any]]
    loss: Callable[[dict[str, Any]], float]
    optimum: float | None          # best possible loss, where known
    label: str                     # what the value means, for tables
    sign: float = 1.0              # reported value = sign * loss (e.g. accuracy = -loss)


def _floats(prefix: str, n: int, low: float, high: float) -> dict[str, dict[str, Any]]:
    return {f"{prefix}{i}": {"type": "float", "low": low, "high": high} for i in range(n)}


def _vec(p: dict[str, Any], prefix: str, n: int) -> np.ndarray:
    return np.array([p[f"{prefix}{i}"] for i in range(n)], dtype=float)


def _shift(n: int, seed: int, radius: float) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-radius, radius, n)


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x0"], p["x1"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                 [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict[str, Any]) -> float:
    x = _vec(p, "x", 6)
    return -float(_H_ALPHA @ np.exp(-(_H_A * (x - _H_P) ** 2).sum(1)))


ROSEN_SHIFT = _shift(4, 1, 1.5)
RASTRIGIN_SHIFT = _shift(6, 2, 2.0)
ACKLEY_SHIFT = _shift(8, 3, 2.0)


def rosenbrock4(p: dict[str, Any]) -> float:
    x = _vec(p, "x", 4) - ROSEN_SHIFT + 1.0   # minimum 0 at x = 1 + shift
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def rastrigin6(p: dict[str, Any]) -> float:
    z = _vec(p, "x", 6) - RASTRIGIN_SHIFT
    return float(10 * len(z) + np.sum(z * z - 10 * np.cos(2 * math.pi * z)))


def ackley8(p: dict[str, Any]) -> float:
    z = _vec(p, "x", 8) - ACKLEY_SHIFT
    n = len(z)
    return float(-20 * math.exp(-0.2 * math.sqrt(np.sum(z * z) / n)) - math.exp(np.sum(np.cos(2 * math.pi * z)) / n)
                 + 20 + math.e)


# A transfer-learning-shaped space like Saga's own: the accuracy a backbone/optimizer/learning rate/
# delimiting depth reaches. Each optimizer has its own best learning rate; too high a rate does not
# converge (chance accuracy, the case the nonconvergence filter exists for); each backbone has its own
# best depth of the delimiting layer; a few backbone/optimizer pairs work better together.
BACKBONES = ("Xception", "VGG16", "VGG19", "ResNet50", "InceptionV3", "InceptionResNetV2",
             "DenseNet121", "DenseNet169", "DenseNet201")
OPTIMIZERS = ("SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "Adamax", "Nadam")
_BB_SCORE = dict(zip(BACKBONES, (0.86, 0.78, 0.77, 0.83, 0.85, 0.88, 0.84, 0.85, 0.87)))
_BB_DEPTH = dict(zip(BACKBONES, (0.55, 0.8, 0.85, 0.6, 0.5, 0.45, 0.65, 0.6, 0.55)))
_OPT_LR = dict(zip(OPTIMIZERS, (-1.5, -3.2, -1.8, 0.0, -3.3, -2.7, -3.4)))   # log10 of the best rate
_OPT_BONUS = dict(zip(OPTIMIZERS, (0.02, 0.0, -0.03, -0.04, 0.03, 0.02, 0.035)))
_PAIR = {("InceptionResNetV2", "Nadam"): 0.02, ("DenseNet201", "Adam"): 0.015, ("Xception", "SGD"): 0.025}


def transfer_accuracy(p: dict[str, Any]) -> float:
    b, o, lr, layer = p["backbone"], p["optimizer"], p["learning_rate"], p["delimiting_layer"]
    off = math.log10(lr) - _OPT_LR[o]
    if off > 1.2:                      # diverges: chance level of a 16-class problem
        return 1 / 16
    acc = _BB_SCORE[b] + _OPT_BONUS[o] + _PAIR.get((b, o), 0.0)
    acc -= 0.06 * off ** 2                                   # the rate: a parabola in log space
    acc -= 0.25 * (layer / 100 - _BB_DEPTH[b]) ** 2          # the depth (layer index of 100)
    acc -= 0.03 * max(0.0, off) * (1 - layer / 100)          # fine-tuning many layers at a high rate hurts
    return max(1 / 16, min(0.99, acc))


# scikit-learn on datasets bundled with it (no download). Cross-validated, deterministic.
@lru_cache(maxsize=None)
def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes
    X, y = load_diabetes(return_X_y=True)
    return X, (y - y.mean()) / y.std()


@lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def svr_diabetes(p: dict[str, Any]) -> float:
    """5-fold cross-validated mean squared error (standardised target) of an SVR."""
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.svm import SVR
    X, y = _diabetes()
    model = SVR(kernel=p["kernel"], C=p["C"], gamma=p["gamma"], epsilon=p["epsilon"], degree=p["degree"],
                max_iter=3000)
    cv = KFold(5, shuffle=True, random_state=0)
    scores = cross_val_score(model, X, y, cv=cv, scoring="neg_mean_squared_error")
    return float(min(-scores.mean(), 10.0))


def sgd_digits(p: dict[str, Any]) -> float:
    """3-fold cross-validated log loss of a logistic-regression SGD classifier (few epochs, so the
    learning-rate schedule, step size and regularisation all matter)."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    X, y = _digits()
    model = SGDClassifier(loss="log_loss", penalty=p["penalty"], alpha=p["alpha"], l1_ratio=p["l1_ratio"],
                          learning_rate=p["schedule"], eta0=p["eta0"], max_iter=p["epochs"], tol=None,
                          average=p["average"] == "yes", random_state=0)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = cross_val_score(model, X, y, cv=cv, scoring="neg_log_loss")
    loss = -float(scores.mean())
    return min(loss, 10.0) if math.isfinite(loss) else 10.0


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("branin", {"x0": {"type": "float", "low": -5, "high": 10}, "x1": {"type": "float", "low": 0, "high": 15}},
         branin, 0.397887, "Branin (2 floats), min"),
    Task("hartmann6", _floats("x", 6, 0.0, 1.0), hartmann6, -3.32237, "Hartmann-6, min"),
    Task("rosenbrock4", _floats("x", 4, -5.0, 10.0), rosenbrock4, 0.0, "Rosenbrock (4 floats, shifted), min"),
    Task("rastrigin6", _floats("x", 6, -5.12, 5.12), rastrigin6, 0.0, "Rastrigin (6 floats, shifted), min"),
    Task("ackley8", _floats("x", 8, -10.0, 10.0), ackley8, 0.0, "Ackley (8 floats, shifted), min"),
    Task("transfer", {"backbone": {"type": "categorical", "values": list(BACKBONES)},
                      "optimizer": {"type": "categorical", "values": list(OPTIMIZERS)},
                      "learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
                      "delimiting_layer": {"type": "int", "low": 0, "high": 100}},
         lambda p: -transfer_accuracy(p), -0.935, "transfer-shaped (9 x 7 categories, log float, int), accuracy max",
         sign=-1.0),
    Task("svr_diabetes", {"kernel": {"type": "categorical", "values": ["rbf", "poly", "sigmoid"]},
                          "C": {"type": "float", "low": 1e-2, "high": 1e3, "scale": "log"},
                          "gamma": {"type": "float", "low": 1e-4, "high": 10.0, "scale": "log"},
                          "epsilon": {"type": "float", "low": 1e-3, "high": 1.0, "scale": "log"},
                          "degree": {"type": "int", "low": 2, "high": 5}},
         svr_diabetes, None, "SVR on diabetes (5-fold MSE, standardised), min"),
    Task("sgd_digits", {"penalty": {"type": "categorical", "values": ["l2", "l1", "elasticnet"]},
                        "alpha": {"type": "float", "low": 1e-7, "high": 1e-1, "scale": "log"},
                        "l1_ratio": {"type": "float", "low": 0.0, "high": 1.0},
                        "schedule": {"type": "categorical", "values": ["constant", "optimal", "invscaling", "adaptive"]},
                        "eta0": {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
                        "epochs": {"type": "int", "low": 1, "high": 8},
                        "average": {"type": "categorical", "values": ["no", "yes"]}},
         sgd_digits, None, "SGD logistic regression on digits (3-fold log loss), min"),
]}
