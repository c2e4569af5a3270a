"""Saga from Python (a notebook, a script): studies on the optimizer service, and ask/tell trials for
any model your own code trains.

    from saga.sdk import Study

    study = Study.create("examples/kvasir-shared.yaml")   # or a dict; Saga's trainers run it
    study.wait(progress=True)
    study.best_params, study.trials_dataframe()
    study.report("report/"); study.export("polyp", to="s3://saga/models")

    study = Study.create({"model": {"family": "custom"}, "search_space": {...}})   # your model
    while (trial := study.ask()) is not None:
        with trial:
            model = build_model(trial.params)
            model.fit(..., callbacks=[trial.keras_callback()])   # per-epoch reports, stopping rules
            trial.complete()

Every call goes to the optimizer's public gRPC API (``SAGA_OPTIMIZER`` or ``optimizer=``); errors are
the exceptions below, with the optimizer's message. Guide: docs/PYTHON_API.md.
"""
from optimizer_svc.client import Unavailable
from optimizer_svc.errors import FailedPrecondition, InvalidArgument, NotFound, OptimizerError

from .results import TrialResult
from .study import Study, StudyFailed
from .trial import Trial

__all__ = ["Study", "Trial", "TrialResult", "StudyFailed", "OptimizerError", "InvalidArgument", "NotFound",
           "FailedPrecondition", "Unavailable"]
