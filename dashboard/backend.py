"""Everything the dashboard reads or does, over the optimizer's public API and the object store.

Holds no state of its own beyond a cache of derived numbers (``insight``), keyed by the observations
they were computed from, so a restart or a second replica shows the same page.
"""
from __future__ import annotations

import dataclasses
import posixpath
import threading
from collections import OrderedDict
from typing import Any

from report.source import read_evaluation, read_study

from . import analysis
from .config import DashboardConfig, connect
from .jobs import ExportJobs

INSIGHT_CACHE = 32  # studies whose derived numbers are kept; a GP refit takes seconds


class Backend:
    def __init__(self, config: DashboardConfig):
        self.config = config
        self.client = connect(config)
        self.jobs = ExportJobs(config)
        self._lock = threading.Lock()
        self._insight: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    def close(self) -> None:
        self.jobs.stop_all()
        self.client.close()

    def studies(self) -> list[dict[str, Any]]:
        return [analysis.study_row(read_study(self.client, s.id, all_trials=False))
                for s in self.client.list_studies()]

    def overview(self, study_id: str) -> dict[str, Any]:
        return analysis.overview(read_study(self.client, study_id))

    def insight(self, study_id: str) -> dict[str, Any]:
        study = read_study(self.client, study_id)
        key = analysis.fingerprint(study)
        with self._lock:
            cached = self._insight.get(study_id)
            if cached and cached[0] == key:
                self._insight.move_to_end(study_id)
                return cached[1]
        best = study.trial(study.best_trial_id)
        if best is None:
            evaluation, why = None, "no trial has finished with a result yet"
        else:
            evaluation, why = read_evaluation(dataclasses.replace(best, artifacts={
                k: self.resolve(v) for k, v in best.artifacts.items()}))
        result = analysis.insight(study, evaluation, why)
        with self._lock:
            self._insight[study_id] = (key, result)
            while len(self._insight) > INSIGHT_CACHE:
                self._insight.popitem(last=False)
        return result

    def resolve(self, uri: str) -> str:
        """An artifact URI as stored, or under ``--store`` when it is a bare key."""
        if "://" in uri or uri.startswith("/") or not self.config.store:
            return uri
        return posixpath.join(self.config.store.rstrip("/"), uri)

    def stop(self, study_id: str) -> dict[str, Any]:
        study = self.client.stop_study(study_id, "stopped from the dashboard")
        return {"study_id": study.id, "state": analysis.study_row(read_study(self.client, study.id))["state"]}

    def watch(self, study_id: str):
        """The raw WatchStudy call: an iterator of events with ``cancel()``."""
        from saga.v1 import optimizer_pb2 as pb

        self.client.get_study(study_id)  # NotFound before the stream starts
        return self.client.stub.WatchStudy(pb.WatchStudyRequest(study_id=study_id), metadata=self.client.metadata)
