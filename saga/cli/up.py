"""``saga up``: the optimizer, N trainer workers and the serving endpoint as local processes,
until Ctrl-C or SIGTERM (which stop them all) or until one of them dies (non-zero exit)."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=2, help="trainer workers (default 2)")
    p.add_argument("--store", default=os.environ.get("SAGA_STORE"),
                   help="object store: s3://bucket/prefix (credentials from SAGA_S3_* variables) or a "
                        "directory (env SAGA_STORE; default DIR/store)")
    p.add_argument("--dir", default=".saga/up", help="logs (one file per process), optimizer database, "
                                                      "trainer scratch space (default .saga/up)")
    p.add_argument("--host", default="127.0.0.1", help="address the services listen on (default 127.0.0.1)")
    p.add_argument("--optimizer-port", type=int, default=50051, help="optimizer gRPC port (default 50051; 0: any)")
    p.add_argument("--grpc-port", type=int, default=8500, help="serving gRPC port (default 8500; 0: any)")
    p.add_argument("--rest-port", type=int, default=8501, help="serving REST port (default 8501; 0: any)")
    p.add_argument("--metrics-ports", type=int, choices=(0, -1), default=0,
                   help="0 (default): each process serves Prometheus metrics on a free port; -1: none")
    p.add_argument("--model-name", default="saga",
                   help="model name the endpoints print (default saga); every model in STORE/models is served")
    p.add_argument("--no-serving", action="store_true", help="do not start the serving endpoint")
    p.add_argument("--dashboard-port", type=int, default=8080,
                   help="web dashboard port (default 8080; 0: any; -1: none)")
    p.add_argument("--dashboard-actions", action="store_true",
                   help="let the dashboard stop studies and export best trials to STORE/models")


def run(args: argparse.Namespace) -> int:
    from saga.local.processes import (ProcessError, StopRequested, Supervisor, ignore_stop_signals,
                                      raise_on_stop_signals, say)
    from saga.local.stack import StackConfig, start_stack

    root = Path(args.dir).resolve()
    m = args.metrics_ports
    try:
        config = StackConfig(dir=root, store=args.store or str(root / "store"), workers=args.workers,
                             host=args.host, optimizer_port=args.optimizer_port, optimizer_metrics_port=m,
                             trainer_metrics_ports=m, grpc_port=args.grpc_port, rest_port=args.rest_port,
                             serving_metrics_port=m, model_name=args.model_name, serving=not args.no_serving,
                             dashboard_port=args.dashboard_port, dashboard_actions=args.dashboard_actions)
    except ValueError as e:
        say(f"saga up: {e}", sys.stderr)
        return 2
    raise_on_stop_signals()
    supervisor = Supervisor(root / "logs")
    started = time.monotonic()
    try:
        try:
            ends = start_stack(config, supervisor, progress=lambda s: say(f"  {s}"))
            say(f"saga up: all services ready in {time.monotonic() - started:.0f}s (logs in {supervisor.log_dir})")
            for line in ends.lines(config):
                say(f"  {line}")
            say(f"  try: saga study create SPEC --optimizer {ends.optimizer} --watch")
            say("Ctrl-C or SIGTERM stops everything.")
            supervisor.watch(threading.Event())  # returns only by an exception
        finally:
            # The reader of our output may be gone (a pipe closed by the same Ctrl-C): say() never
            # raises, so nothing keeps the children from being stopped.
            ignore_stop_signals()
            say("saga up: stopping all services")
            killed = supervisor.stop_all()
            if killed:
                say(f"saga up: killed {', '.join(killed)} (did not stop within {supervisor.stop_timeout_s:.0f}s)")
    except StopRequested as e:
        say(f"saga up: stopped ({e})")
        return 130 if e.signum == signal.SIGINT else 0
    except (ProcessError, OSError) as e:  # a child that died, a taken port (one line)
        say(f"saga up: {e}", sys.stderr)
        return 1
    return 0
