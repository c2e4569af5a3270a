"""Tune a Keras MLP on tabular data through Saga's ask/tell API: the breast-cancer diagnosis task of
the seed's Keras Tuner reports, on the Wisconsin dataset that ships with scikit-learn (569 tumours,
30 features, malignant or benign; no download).

Saga proposes the parameters (GP + Expected Improvement), stops hopeless or stalled trials through
the same rules as for images, and keeps every observation; this script only builds and trains the
model. Run an optimizer first (``saga optimizer`` or ``saga up``), then:

    python examples/tabular_mlp.py --optimizer localhost:50051 --trials 12 --report report-mlp/

The test split is never shown to the optimizer: each trial evaluates on it and stores the result
beside its validation score (``metrics.json``, which the report and the dashboard show per class).
Guide: docs/PYTHON_API.md.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from saga.sdk import Study

CLASSES = ["malignant", "benign"]  # load_breast_cancer's target_names, in label order


def spec(trials: int, epochs: int, seed: int) -> dict:
    return {
        "name": "breast-cancer MLP",
        "model": {"family": "custom"},          # your code trains it; Saga's trainers never lease it
        "strategy": "joint",                    # one phase, GP + EI (or "random")
        "search_space": {
            "units": {"type": "int", "low": 8, "high": 128},
            "layers": {"type": "int", "low": 1, "high": 3},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "scale": "log"},
            "activation": {"type": "categorical", "values": ["relu", "tanh"]},
        },
        "objective": {"metric": "val_accuracy", "goal": "maximize"},
        "budget": {"trials_per_phase": trials, "initial_points": min(4, trials), "parallel_trials": 1},
        "stopping": {"nonconvergence": {"metric": "val_accuracy", "threshold": 0.7, "epochs": 5},
                     "early_stopping": {"metric": "val_loss", "patience": 5}},
        "training": {"epochs": epochs},
        "seed": seed,
    }


def data(seed: int):
    """60/20/20 stratified train/validation/test, standardised on the training split only."""
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest,
                                                    random_state=seed)
    scaler = StandardScaler().fit(x_train)
    return [(scaler.transform(a).astype("float32"), b) for a, b in
            ((x_train, y_train), (x_val, y_val), (x_test, y_test))]


def build_model(params: dict, features: int):
    """Keras Tuner's ``build_model(hp)``, with the parameters Saga proposed."""
    import keras

    model = keras.Sequential([keras.Input((features,))])
    for _ in range(params["layers"]):
        model.add(keras.layers.Dense(params["units"], activation=params["activation"]))
        model.add(keras.layers.Dropout(params["dropout"]))
    model.add(keras.layers.Dense(len(CLASSES), activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def evaluation(model, x, y) -> dict:
    """Per-class metrics and the confusion matrix, as Saga's trainers compute them for images."""
    from trainer_svc.evaluation import classification_report

    return classification_report(y, np.argmax(model.predict(x, verbose=0), axis=-1), CLASSES)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--optimizer", default=os.environ.get("SAGA_OPTIMIZER", "localhost:50051"))
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", type=Path, default=Path(".saga/tabular"), help="where each trial's metrics.json goes")
    p.add_argument("--report", type=Path, help="write the study's report (HTML, figures, tables) here")
    args = p.parse_args()

    import keras

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data(args.seed)
    study = Study.create(spec(args.trials, args.epochs, args.seed), optimizer=args.optimizer)
    print(f"study {study.id}: {args.trials} trials of up to {args.epochs} epochs", flush=True)
    while (trial := study.ask()) is not None:
        with trial:  # an exception fails the trial (and is raised); Ctrl-C hands it back
            model = build_model(trial.params, x_train.shape[1])
            model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=trial.max_epochs, batch_size=32,
                      verbose=0, callbacks=[trial.keras_callback()])
            if trial.finished:  # the callback saw a NaN loss: infeasible
                continue
            metrics = {"evaluation": {"validation": evaluation(model, x_val, y_val),
                                      "test": evaluation(model, x_test, y_test)}}
            path = args.store.resolve() / study.id / trial.id / "metrics.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(metrics, indent=1))
            done = trial.complete({"test_accuracy": metrics["evaluation"]["test"]["accuracy"]},
                                  artifacts={"metrics": str(path)})
            print(f"trial {done.number} {done.state.lower()}: val_accuracy {done.value:.4f}, test accuracy "
                  f"{done.metrics['test_accuracy']:.4f}" + (f" ({trial.stop_reason})" if trial.stop_reason else "")
                  + f" {trial.params}", flush=True)
    best = study.best_trial
    print(f"best val_accuracy {best.value:.4f} (trial {best.number}), held-out test accuracy "
          f"{best.metrics['test_accuracy']:.4f}: {best.params}")
    print(study.trials_dataframe()[["state", "value", "epochs", "ended_by"]].to_string())
    if args.report:
        print(f"report: {study.report(args.report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
