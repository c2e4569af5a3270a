"""``saga trainer``: a worker that leases trials from the optimizer and trains them (container entry point)."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from saga.cli import security_flags
from saga.security import SecurityConfigError

# 128 + SIGTERM, as a shell reports a process the signal ended: for a Kubernetes Job, a worker
# stopped before its study is done did not complete, and k8s/overlays/kueue's podFailurePolicy
# does not count it as a failure (its trial was handed back).
EXIT_INTERRUPTED = 143


def configure(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--optimizer", default=env("SAGA_OPTIMIZER", "localhost:50051"),
                   help="optimizer HOST:PORT (env SAGA_OPTIMIZER, default localhost:50051)")
    p.add_argument("--store", default=env("SAGA_STORE", ".saga/store"),
                   help="object store for artifacts: s3://bucket/prefix or a directory (env SAGA_STORE, "
                        "default .saga/store); S3 credentials come from SAGA_S3_* variables")
    p.add_argument("--cache-dir", default=env("SAGA_CACHE_DIR", ".saga/cache"),
                   help="local dataset cache, shareable by workers of one node (env SAGA_CACHE_DIR)")
    p.add_argument("--work-dir", default=env("SAGA_WORK_DIR") or None,
                   help="scratch space for checkpoints and logs, one directory per attempt, removed when "
                        "the attempt ends (env SAGA_WORK_DIR; default CACHE_DIR/work)")
    p.add_argument("--worker-id", default=env("SAGA_WORKER_ID", f"{socket.gethostname()}-{os.getpid()}"),
                   help="name shown in the optimizer's records (env SAGA_WORKER_ID, default host-pid)")
    p.add_argument("--study", default=env("SAGA_STUDY", ""), help="only run trials of this study")
    p.add_argument("--metrics-port", type=int, default=int(env("SAGA_METRICS_PORT", "-1")),
                   help="Prometheus metrics port (env SAGA_METRICS_PORT; -1, the default, disables)")
    p.add_argument("--max-trials", type=int, default=None, help="exit after this many trials")
    p.add_argument("--exit-when-idle", action="store_true", help="exit when no trial comes within --lease-wait")
    p.add_argument("--exit-when-done", action="store_true",
                   help="exit (code 0) once --study (without it: every study) is no longer active; stopped "
                        f"by a signal before that, exit {EXIT_INTERRUPTED} (a Kubernetes Job worker)")
    p.add_argument("--lease-wait", type=float, default=5.0,
                   help="seconds one LeaseTrial call waits (max 60); also the longest a SIGTERM waits when idle")
    security_flags.add_client(p)


def run(args: argparse.Namespace) -> int:
    from optimizer_svc.client import OptimizerClient
    from optimizer_svc.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
    from saga.ports import PortInUse, start_metrics_server
    from saga.runtime_paths import trainer_work_dir
    from trainer_svc.worker import Worker, WorkerMetrics

    try:
        security = security_flags.client(args)
    except SecurityConfigError as e:
        print(f"saga trainer: {e}", file=sys.stderr, flush=True)
        return 2
    stop = threading.Event()
    signals: list[int] = []

    def on_signal(signum, frame):
        print(f"trainer {args.worker_id}: signal {signum}, handing back the current trial", file=sys.stderr, flush=True)
        signals.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics = WorkerMetrics()
    if args.metrics_port >= 0:
        try:
            port = start_metrics_server(f"trainer {args.worker_id}", args.metrics_port, metrics.registry)
        except PortInUse as e:
            print(f"saga trainer: {e}", file=sys.stderr, flush=True)
            return 1
        print(f"trainer {args.worker_id}: metrics on :{port}/metrics", flush=True)
    with OptimizerClient(args.optimizer, abort=stop, security=security) as client:
        worker = Worker(client, args.store, worker_id=args.worker_id, cache_dir=Path(args.cache_dir),
                        work_dir=trainer_work_dir(args.cache_dir, args.work_dir), study_id=args.study,
                        lease_wait=args.lease_wait, metrics=metrics, stop=stop)
        print(f"trainer {args.worker_id} working for {args.optimizer}", flush=True)
        try:
            n = worker.run(max_trials=args.max_trials, exit_when_idle=args.exit_when_idle,
                           exit_when_done=args.exit_when_done)
        except (InvalidArgument, NotFound, Unauthenticated, PermissionDenied) as e:
            # e.g. --study names no study (nothing to wait for), or the token is not a worker's
            print(f"saga trainer: the optimizer refuses this worker's requests: {e}", file=sys.stderr, flush=True)
            return 2
    print(f"trainer {args.worker_id}: ran {n} trial(s)", flush=True)
    return EXIT_INTERRUPTED if args.exit_when_done and signals else 0
