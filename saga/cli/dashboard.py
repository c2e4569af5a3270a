"""``saga dashboard --optimizer HOST:PORT [--store URI] [--port 8080]``: the web interface — studies,
live progress, analysis and (with ``--enable-actions``) stop and export — until Ctrl-C or SIGTERM."""
from __future__ import annotations

import argparse
import os
import sys

from saga.cli import security_flags


def configure(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--optimizer", default=env("SAGA_OPTIMIZER", "localhost:50051"),
                   help="optimizer HOST:PORT (env SAGA_OPTIMIZER, default localhost:50051)")
    p.add_argument("--store", default=env("SAGA_STORE"),
                   help="object store of the trainers' artifacts, for artifact URIs stored as bare keys "
                        "(env SAGA_STORE; S3 credentials from SAGA_S3_* variables)")
    p.add_argument("--host", default=env("SAGA_DASHBOARD_HOST", "127.0.0.1"),
                   help="address to listen on (env SAGA_DASHBOARD_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(env("SAGA_DASHBOARD_PORT", "8080")),
                   help="HTTP port (env SAGA_DASHBOARD_PORT, default 8080; 0 picks a free one)")
    p.add_argument("--enable-actions", action="store_true",
                   default=env("SAGA_DASHBOARD_ACTIONS", "").lower() in ("1", "true", "yes"),
                   help="allow stopping studies and exporting best trials from the page "
                        "(env SAGA_DASHBOARD_ACTIONS=true; default: read-only)")
    p.add_argument("--export-to", default=env("SAGA_MODEL_BASE"),
                   help="model base URI the export action writes to (env SAGA_MODEL_BASE)")
    p.add_argument("--metrics-port", type=int, default=int(env("SAGA_METRICS_PORT", "-1")),
                   help="Prometheus metrics port (env SAGA_METRICS_PORT; -1, the default, disables)")
    # HTTPS and tokens for the browser's side; --tls-ca, --tls-client-* and --token-file: the
    # dashboard's own connection to the optimizer.
    security_flags.add_server(p)
    security_flags.add_client(p)


def run(args: argparse.Namespace) -> int:
    from dashboard.config import DashboardConfig

    try:
        config = DashboardConfig(optimizer=args.optimizer, store=args.store, actions=args.enable_actions,
                                 export_to=args.export_to, host=args.host, port=args.port,
                                 tls=security_flags.server_tls(args), tokens=security_flags.token_file(args),
                                 optimizer_security=security_flags.client(args))
    except ValueError as e:  # also SecurityConfigError
        print(f"saga dashboard: {e}", file=sys.stderr)
        return 2
    from dashboard.server import serve

    try:
        serve(config, ready=lambda line: print(line, flush=True),
              metrics_port=None if args.metrics_port < 0 else args.metrics_port)
    except OSError as e:
        print(f"saga dashboard: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
        return 1
    return 0
