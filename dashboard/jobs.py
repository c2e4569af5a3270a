"""Exports started from the dashboard: each one a ``saga export`` process, so the dashboard never
imports TensorFlow and an export that crashes takes nothing else down. Kept in memory: a job's
outcome is also in the model base (the new version and its model card)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .config import DashboardConfig

MAX_JOBS = 50
OUTPUT_LINES = 40


@dataclass
class Job:
    id: str
    study_id: str
    model_name: str
    started: float
    state: str = "running"          # running, succeeded, failed
    returncode: int | None = None
    output: deque = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES))
    process: subprocess.Popen | None = None

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "study_id": self.study_id, "model_name": self.model_name, "state": self.state,
                "returncode": self.returncode, "output": list(self.output), "started": self.started}


class ExportJobs:
    def __init__(self, config: DashboardConfig):
        self.config = config
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, study_id: str, model_name: str) -> Job:
        assert self.config.export_to, "checked by the caller"
        job = Job(uuid.uuid4().hex[:12], study_id, model_name, time.time())
        job.process = subprocess.Popen(
            [sys.executable, "-m", "saga.cli.main", "export", study_id, "--model-name", model_name,
             "--to", self.config.export_to, "--optimizer", self.config.optimizer],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        with self._lock:
            self._jobs[job.id] = job
            for old in list(self._jobs)[:-MAX_JOBS]:
                if self._jobs[old].state != "running":
                    del self._jobs[old]
        threading.Thread(target=self._follow, args=(job,), name=f"export-{job.id}", daemon=True).start()
        return job

    def _follow(self, job: Job) -> None:
        assert job.process is not None and job.process.stdout is not None
        for line in job.process.stdout:
            job.output.append(line.rstrip())
        job.returncode = job.process.wait()
        job.state = "succeeded" if job.returncode == 0 else "failed"

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def stop_all(self) -> None:
        with self._lock:
            running = [j for j in self._jobs.values() if j.process and j.process.poll() is None]
        for job in running:
            job.process.terminate()
