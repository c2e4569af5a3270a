"""``saga optimizer``: the optimizer gRPC service (container entry point)."""
from __future__ import annotations

import argparse
import os
import sys

from saga.cli import security_flags


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=os.environ.get("SAGA_OPTIMIZER_HOST", "0.0.0.0"),
                   help="address to listen on (env SAGA_OPTIMIZER_HOST, default 0.0.0.0)")
    p.add_argument("--port", type=int, default=int(os.environ.get("SAGA_OPTIMIZER_PORT", "50051")),
                   help="gRPC port (env SAGA_OPTIMIZER_PORT, default 50051; 0 picks a free one)")
    p.add_argument("--db", default=os.environ.get("SAGA_DB", ".saga/optimizer.db"),
                   help="SQLite database path (env SAGA_DB, default .saga/optimizer.db)")
    p.add_argument("--metrics-port", type=int, default=int(os.environ.get("SAGA_METRICS_PORT", "9090")),
                   help="Prometheus metrics port (env SAGA_METRICS_PORT, default 9090; -1 disables)")
    p.add_argument("--no-dataset-check", action="store_true",
                   help="create studies without reading their dataset's manifest (by default it is read, "
                        "checked and pinned when the store is reachable: a local path, or S3 with SAGA_S3_*)")
    p.add_argument("--offline", action="store_true",
                   default=os.environ.get("SAGA_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"),
                   help="trainers cannot reach the internet: refuse studies with `weights: imagenet` at creation "
                        "and say how to use a weights file from the store (env SAGA_OFFLINE=true)")
    p.add_argument("--health-port", type=int, default=int(os.environ.get("SAGA_HEALTH_PORT", "-1")),
                   help="also serve gRPC health alone, in plain text, on this port: for kubelet probes, "
                        "which cannot speak TLS (env SAGA_HEALTH_PORT; -1, the default, disables)")
    p.add_argument("--projects", default=os.environ.get("SAGA_PROJECTS"),
                   help="projects file (YAML): the projects studies may belong to and the URI prefixes each "
                        "may use for datasets, weights and artifacts (env SAGA_PROJECTS; default: one tenant, any URI)")
    p.add_argument("--proposal-processes", type=int,
                   default=int(os.environ.get("SAGA_PROPOSAL_PROCESSES", "2")),
                   help="processes that compute the model's proposals (GP fits), at a lower CPU priority so "
                        "that short calls are answered first; 0 computes them in the optimizer's own process "
                        "(env SAGA_PROPOSAL_PROCESSES, default 2)")
    security_flags.add_server(p)


def run(args: argparse.Namespace) -> int:
    import sqlite3

    from optimizer_svc.schema import SchemaError
    from optimizer_svc.server import serve
    from optimizer_svc.projects import Projects, ProjectsFileError
    from saga.security import SecurityConfigError
    if args.proposal_processes < 0:
        print(f"saga optimizer: --proposal-processes must be >= 0, got {args.proposal_processes}",
              file=sys.stderr, flush=True)
        return 2
    try:
        serve(host=args.host, port=args.port, db=args.db,
              metrics_port=None if args.metrics_port < 0 else args.metrics_port,
              check_datasets=not args.no_dataset_check, offline=args.offline,
              tls=security_flags.server_tls(args), tokens=security_flags.token_file(args),
              health_port=None if args.health_port < 0 else args.health_port,
              projects=Projects.load(args.projects) if args.projects else None,
              proposal_processes=args.proposal_processes)
    # A taken port, an unusable database, a certificate or token file to fix: one line.
    except (OSError, SchemaError, sqlite3.Error, SecurityConfigError, ProjectsFileError) as e:
        print(f"saga optimizer: {e}", file=sys.stderr, flush=True)
        return 1
    return 0
