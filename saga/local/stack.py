"""The local stack of ``saga up``: the optimizer, N trainer workers and the serving endpoint as
supervised processes sharing one object store, with their addresses once they are up."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from saga.local.processes import Supervisor, free_port
from saga.ports import check_free

# A trainer or serving process imports TensorFlow before it reports ready: ~10 s alone, minutes
# when several start at once on a busy 2-core laptop; only a process stuck for good takes longer.
READY_TIMEOUT_S = 600.0
# An idle trainer notices SIGTERM only between LeaseTrial long-polls: keep them short locally.
_LEASE_WAIT_S = 3.0
_OPTIMIZER_READY = r"optimizer listening on (\S+):(\d+)"
_TRAINER_READY = r"trainer (\S+) working for"
_SERVING_READY = r"gRPC :(\d+)\s+REST :(\S+)\s+metrics :(\S+)"
_DASHBOARD_READY = r"dashboard listening on (\S+)"


@dataclass(frozen=True)
class StackConfig:
    """What ``saga up`` starts. Port 0 means "pick a free one"; -1 disables a metrics port."""

    dir: Path                        # logs, optimizer database, trainer scratch space
    store: str                       # object store URI shared by trainers, export and serving
    workers: int = 2
    host: str = "127.0.0.1"
    optimizer_port: int = 50051
    optimizer_metrics_port: int = 0
    trainer_metrics_ports: int = 0   # 0: a free port each; -1: none
    grpc_port: int = 8500
    rest_port: int = 8501
    serving_metrics_port: int = 0
    model_name: str = "saga"
    serving: bool = True
    dashboard_port: int = -1         # -1: no dashboard (``saga up`` starts one on 8080)
    dashboard_actions: bool = False  # stop and export (to the model base) from the page
    trainer_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.workers <= 64:
            raise ValueError(f"--workers must be in [0, 64], got {self.workers}")
        for name in ("optimizer_port", "grpc_port", "rest_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name.replace('_', '-')} must be a port in [0, 65535], got {getattr(self, name)}")
        if not self.model_name or "/" in self.model_name:
            raise ValueError(f"model name {self.model_name!r} must be non-empty and contain no '/'")

    @property
    def model_base(self) -> str:
        return f"{self.store.rstrip('/')}/models"


@dataclass
class Endpoints:
    """Where each service listens, as reported by the services themselves."""

    optimizer: str = ""
    optimizer_metrics: int | None = None
    trainer_metrics: dict[str, int | None] = field(default_factory=dict)
    serving_grpc: str = ""
    serving_rest: str = ""
    serving_metrics: str = ""
    dashboard: str = ""

    def lines(self, config: StackConfig) -> list[str]:
        out = [f"optimizer gRPC   {self.optimizer}" + _metrics(self.optimizer_metrics)]
        for name, port in self.trainer_metrics.items():
            out.append(f"{name:<16} store {config.store}" + _metrics(port))
        if self.serving_grpc:
            out.append(f"serving gRPC     {self.serving_grpc}  REST http://{self.serving_rest}/v1/models/"
                       f"{config.model_name}  metrics {self.serving_metrics}")
            out.append(f"model base       {config.model_base}")
        if self.dashboard:
            out.append(f"dashboard        {self.dashboard}")
        return out


def _metrics(port: int | None) -> str:
    return f"  metrics http://127.0.0.1:{port}/metrics" if port else ""


def _saga(*args: str) -> list[str]:
    return [sys.executable, "-m", "saga.cli.main", *args]


def _port(value: int) -> int:
    return free_port() if value == 0 else value


def start_stack(config: StackConfig, supervisor: Supervisor,
                progress: Callable[[str], None] = lambda _: None) -> Endpoints:
    """Starts every service of ``config`` under ``supervisor`` and waits until all are ready.
    ProcessError (naming the service, with its last log lines) if one fails to start; what was
    started stays with the supervisor, which stops it."""
    ends = Endpoints()
    # A taken port fails here, in one line naming it, before anything is started (saga.ports).
    check_free("optimizer", config.host, config.optimizer_port)
    if config.serving:
        check_free("serving gRPC", config.host, config.grpc_port)
        check_free("serving REST", config.host, config.rest_port)
    config.dir.mkdir(parents=True, exist_ok=True)
    metrics = _port(config.optimizer_metrics_port) if config.optimizer_metrics_port >= 0 else -1
    progress("starting the optimizer")
    opt = supervisor.start("optimizer", _saga(
        "optimizer", "--host", config.host, "--port", str(config.optimizer_port),
        "--db", str(config.dir / "optimizer.db"), "--metrics-port", str(metrics)),
        ready=_OPTIMIZER_READY, ready_timeout_s=READY_TIMEOUT_S)
    assert opt.ready is not None
    supervisor.check_listening(opt, int(opt.ready.group(2)))  # ours answers there, not another process
    # Clients reach a wildcard listener over loopback.
    host = "127.0.0.1" if opt.ready.group(1) in ("0.0.0.0", "::", "[::]") else opt.ready.group(1)
    ends.optimizer, ends.optimizer_metrics = f"{host}:{opt.ready.group(2)}", metrics if metrics >= 0 else None

    # Trainers and serving import TensorFlow; start them together, then wait for each.
    waiting = []
    for i in range(1, config.workers + 1):
        name = f"trainer-{i}"
        port = _port(config.trainer_metrics_ports) if config.trainer_metrics_ports >= 0 else -1
        ends.trainer_metrics[name] = port if port >= 0 else None
        progress(f"starting {name}")
        waiting.append(supervisor.start(name, _saga(
            "trainer", "--optimizer", ends.optimizer, "--store", config.store,
            "--cache-dir", str(config.dir / "cache"), "--work-dir", str(config.dir / "work" / name),
            "--worker-id", name, "--metrics-port", str(port), "--lease-wait", str(_LEASE_WAIT_S),
            *config.trainer_args), tier=1))
    serving = None
    if config.serving:
        progress(f"starting serving of the models in {config.model_base}")
        serving = supervisor.start("serving", _saga(
            "serve", "--model-base", config.model_base, "--model-name", config.model_name, "--all-models",
            "--host", config.host, "--grpc-port", str(config.grpc_port), "--rest-port", str(config.rest_port),
            "--metrics-port", str(config.serving_metrics_port),
            "--cache-dir", str(config.dir / "serving-cache")), tier=1)
    if config.dashboard_port >= 0:
        actions = ("--enable-actions", "--export-to", config.model_base) if config.dashboard_actions else ()
        dash = supervisor.start("dashboard", _saga("dashboard", "--optimizer", ends.optimizer, "--store", config.store,
                                                   "--host", config.host, "--port", str(config.dashboard_port),
                                                   *actions), tier=1, ready=_DASHBOARD_READY,
                                ready_timeout_s=READY_TIMEOUT_S)
        ends.dashboard = dash.ready.group(1) if dash.ready else ""
    for child in waiting:
        supervisor.wait_ready(child, _TRAINER_READY, READY_TIMEOUT_S)
        progress(f"{child.name} ready")
    if serving is not None:
        m = supervisor.wait_ready(serving, _SERVING_READY, READY_TIMEOUT_S)
        supervisor.check_listening(serving, *(int(p) for p in (m.group(1), m.group(2)) if p.isdigit()))
        shost = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
        ends.serving_grpc, ends.serving_rest = f"{shost}:{m.group(1)}", f"{shost}:{m.group(2)}"
        ends.serving_metrics = f"http://{shost}:{m.group(3)}/metrics" if m.group(3).isdigit() else "-"
        progress("serving ready")
    return ends
