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
    p.add_argument("--model-name", default="saga", help="model name served from STORE/models (default saga)")
    p.add_argument("--no-serving", action="store_true", help="do not start the serving endpoint")
    p.add_argument("--dashboard-port", type=int, default=8080,
                   help="web dashboard port (default 8080; 0: any; -1: none)")
    p.add_argument("--dashboard-actions", action="store_true",
                   help="let the dashboard stop studies and export best trials to STORE/models")


def run(args: argparse.Namespace) -> int:
    from saga.local.processes import ProcessError, StopRequested, Supervisor, raise_on_stop_signals
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
        print(f"saga up: {e}", file=sys.stderr)
        return 2
    raise_on_stop_signals()
    supervisor = Supervisor(root / "logs")
    started = time.monotonic()
    try:
        try:
            ends = start_stack(config, supervisor, progress=lambda s: print(f"  {s}", flush=True))
            print(f"saga up: all services ready in {time.monotonic() - started:.0f}s "
                  f"(logs in {supervisor.log_dir})", flush=True)
            for line in ends.lines(config):
                print(f"  {line}", flush=True)
            print(f"  try: saga study create SPEC --optimizer {ends.optimizer} --watch", flush=True)
            print("Ctrl-C or SIGTERM stops everything.", flush=True)
            supervisor.watch(threading.Event())  # returns only by an exception
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            print("saga up: stopping all services", flush=True)
            killed = supervisor.stop_all()
            if killed:
                print(f"saga up: killed {', '.join(killed)} (did not stop within "
                      f"{supervisor.stop_timeout_s:.0f}s)", flush=True)
    except StopRequested as e:
        print(f"saga up: stopped ({e})", flush=True)
        return 130 if e.signum == signal.SIGINT else 0
    except ProcessError as e:
        print(f"saga up: {e}", file=sys.stderr, flush=True)
        return 1
    return 0
