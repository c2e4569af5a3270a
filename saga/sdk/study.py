"""``Study``: create or open a study on the optimizer, follow it, read its results, ask for trials."""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from optimizer_svc.client import OptimizerClient
from optimizer_svc.errors import InvalidArgument, OptimizerError
from saga.security.channels import ClientSecurity
from saga.v1 import optimizer_pb2 as pb

from .results import TrialResult, dataframe
from .trial import Trial

DEFAULT_OPTIMIZER = "localhost:50051"
# How often ``wait`` asks the optimizer for news: short unary calls, so Ctrl-C in a notebook lands
# between them and never inside a stream.
POLL_S = 2.0


class StudyFailed(OptimizerError):
    """``wait(raise_on_failure=True)``: the study ended FAILED or STOPPED; the message says why."""


def _address(optimizer: str | None) -> str:
    return optimizer or os.environ.get("SAGA_OPTIMIZER", DEFAULT_OPTIMIZER)


def _connect(optimizer: str | None) -> OptimizerClient:
    """A client of the optimizer with the TLS and token of the environment (SAGA_TLS_CA,
    SAGA_TLS_CLIENT_CERT/KEY, SAGA_TOKEN or SAGA_TOKEN_FILE; saga.security.channels)."""
    return OptimizerClient(_address(optimizer), security=ClientSecurity.from_env())


def _load_spec(spec: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(spec, dict):
        return spec
    path = Path(spec)
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as e:
        raise InvalidArgument(f"spec: cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise InvalidArgument(f"spec: {path} is not valid YAML/JSON: {e}") from None
    if not isinstance(loaded, dict):
        raise InvalidArgument(f"spec: {path} must hold a mapping")
    return loaded


class Study:
    """A study on the optimizer. Every property reads the optimizer's current state; nothing is cached
    except the study's id, so two notebooks (or a notebook and ``saga study``) see the same study."""

    def __init__(self, study_id: str, *, optimizer: str | None = None, client: OptimizerClient | None = None):
        self.id = study_id
        self.optimizer = _address(optimizer)
        self._client = client or _connect(self.optimizer)
        self._study = self._client.get_study(study_id)  # NotFound for an unknown id

    # -- opening
    @classmethod
    def create(cls, spec: dict[str, Any] | str | Path, *, optimizer: str | None = None) -> "Study":
        """Creates a study from a spec (a mapping, or a YAML/JSON file). InvalidArgument names the field
        of a spec that cannot run."""
        client = _connect(optimizer)
        created = client.create_study(_load_spec(spec))
        return cls(created.id, optimizer=optimizer, client=client)

    @classmethod
    def get(cls, study_id: str, *, optimizer: str | None = None) -> "Study":
        """An existing study by id (NotFound if there is none)."""
        return cls(study_id, optimizer=optimizer)

    @classmethod
    def list(cls, *, optimizer: str | None = None) -> list["Study"]:
        """Every study, newest first."""
        client = _connect(optimizer)
        return [cls(s.id, optimizer=optimizer, client=client) for s in client.list_studies()]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "Study":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Study({self.id!r}, name={self.name!r}, state={self.state!r})"

    # -- state
    def refresh(self) -> pb.Study:
        self._study = self._client.get_study(self.id)
        return self._study

    @property
    def name(self) -> str:
        return self._study.name

    @property
    def state(self) -> str:
        """ACTIVE, COMPLETED, STOPPED or FAILED, read now."""
        return pb.StudyState.Name(self.refresh().state).removeprefix("STUDY_")

    @property
    def message(self) -> str:
        return self.refresh().message

    @property
    def best_trial(self) -> TrialResult | None:
        """The best trial so far by the study's objective, or None before the first observation."""
        best = self._client.best_trial(self.id)
        return TrialResult.from_proto(best) if best is not None else None

    @property
    def best_params(self) -> dict[str, Any]:
        """The best trial's parameters; LookupError while no trial has a result."""
        best = self.best_trial
        if best is None:
            raise LookupError(f"study {self.id} has no finished trial with a result yet")
        return best.params

    @property
    def best_value(self) -> float | None:
        best = self.best_trial
        return best.value if best is not None else None

    @property
    def trials(self) -> list[TrialResult]:
        return [TrialResult.from_proto(t) for t in self._client.list_trials(self.id)]

    def trials_dataframe(self):
        """Every trial as a pandas DataFrame: state, value, one ``params_NAME`` column per parameter,
        epochs, duration, what ended it (the same rows as ``saga study trials`` and the report)."""
        from report.source import read_study
        from report.tables import trials_table

        return dataframe(trials_table(read_study(self._client, self.id)))

    # -- following
    def wait(self, progress: bool = True, *, timeout: float | None = None, raise_on_failure: bool = False,
             out: TextIO | None = None) -> "Study":
        """Blocks until the study ends; with ``progress``, prints each trial as it ends and a progress
        line. TimeoutError after ``timeout`` seconds (the study goes on); StudyFailed with
        ``raise_on_failure`` when it ends FAILED or STOPPED."""
        out = out or sys.stdout
        give_up = None if timeout is None else time.monotonic() + timeout
        seen: set[str] = set()
        last = ""
        while True:
            study = self.refresh()
            if progress:
                for t in self._client.list_trials(self.id):
                    if t.id not in seen and t.state not in (pb.TRIAL_PENDING, pb.TRIAL_RUNNING):
                        seen.add(t.id)
                        print(_trial_line(TrialResult.from_proto(t)), file=out, flush=True)
                line = _progress_line(study, self._client.best_trial(self.id))
                if line != last:
                    print(line, file=out, flush=True)
                    last = line
            if study.state != pb.STUDY_ACTIVE:
                break
            if give_up is not None and time.monotonic() >= give_up:
                raise TimeoutError(f"study {self.id} still {self.state.lower()} after {timeout:.0f}s")
            time.sleep(POLL_S if give_up is None else max(0.0, min(POLL_S, give_up - time.monotonic())))
        if raise_on_failure and study.state != pb.STUDY_COMPLETED:
            raise StudyFailed(f"study {self.id} ended {self.state.lower()}: {study.message or 'no message'}")
        return self

    def stop(self, reason: str = "stopped from the Python API") -> None:
        self._client.stop_study(self.id, reason)

    # -- results
    def report(self, out: str | Path, *, dataset_name: str | None = None) -> Path:
        """Writes the thesis's figures and tables (``saga report``) into ``out``; returns index.html."""
        from report.build import write_report
        from report.source import read_for_report

        study, evaluation, why = read_for_report(self._client, self.id)
        return write_report(study, evaluation, Path(out), evaluation_note=why, dataset_name=dataset_name).index

    def export(self, model_name: str, to: str, *, trial_id: str | None = None) -> str:
        """Exports the best trial (or ``trial_id``) of a Saga-trained study as the next TF Serving
        version of ``model_name`` under the model base ``to``; returns the version's URI. Imports
        TensorFlow. ValueError when the trial has no checkpoint (a custom model's trials have none)."""
        from saga.cli.export import fetch_trial
        from serving.from_trial import export_trial

        return export_trial(fetch_trial(self.optimizer, self.id, trial_id, self._client.security), to, model_name).uri

    # -- ask/tell
    def ask(self, *, timeout: float | None = None, worker_id: str | None = None) -> Trial | None:
        """The next trial to run: its parameters, under a lease kept alive in the background. None when
        the study has no trial left (its budget is spent or it ended). Waits while every allowed
        parallel trial is running (complete yours first); TimeoutError after ``timeout`` seconds."""
        worker = worker_id or f"sdk-{socket.gethostname()}-{os.getpid()}"
        give_up = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 10.0 if give_up is None else max(0.0, min(10.0, give_up - time.monotonic()))
            got = self._client.lease_trial(worker, study_id=self.id, wait=wait)
            if got is not None:
                return Trial(self._client, *got)
            if self.refresh().state != pb.STUDY_ACTIVE:
                return None
            if give_up is not None and time.monotonic() >= give_up:
                raise TimeoutError(f"no trial of study {self.id} became free within {timeout:.0f}s")

    def optimize(self, objective: Callable[[Trial], float | dict[str, float] | None],
                 n_trials: int | None = None) -> "Study":
        """Optuna's habit: runs ``objective(trial)`` for each trial until the study has none left (or
        ``n_trials``). The objective returns the objective value, a dict of final metrics, or None
        after reporting epochs; an exception fails the trial (and is raised again)."""
        done = 0
        while n_trials is None or done < n_trials:
            trial = self.ask()
            if trial is None:
                break
            with trial:
                result = objective(trial)
                if not trial.finished:
                    metric = self._objective_metric()
                    trial.complete(result if isinstance(result, dict) or result is None
                                   else {metric: float(result)})
            done += 1
        return self

    def _objective_metric(self) -> str:
        return json.loads(self._study.spec_json).get("objective", {}).get("metric", "val_accuracy")


def _trial_line(t: TrialResult) -> str:
    value = "no value" if t.value is None else f"{t.value:.4f}"
    why = t.stop_reason or (t.error.strip().splitlines()[0] if t.error.strip() else "")
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(t.params.items()))
    return f"trial {t.number} {t.state.lower()}: {value}" + (f" ({why})" if why else "") + f" [{params}]"


def _progress_line(study: pb.Study, best: pb.Trial | None) -> str:
    done = sum(p.trials_finished for p in study.phases)
    total = sum(p.budget for p in study.phases)
    state = pb.StudyState.Name(study.state).removeprefix("STUDY_").lower()
    running = study.trial_counts.get("TRIAL_RUNNING", 0)
    return (f"{study.id} {state}: {done}/{total} trials finished, running {running}, "
            + (f"best {best.value:.4f} ({best.id})" if best is not None else "best -"))
