"""``saga serve --model-base URI --model-name NAME``: serve exported models over TF Serving's
gRPC and REST APIs, loading new versions as they appear."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from saga.cli import security_flags
from serving.input_limits import DEFAULT_MAX_IMAGE_PIXELS  # numpy and Pillow only: --help needs no TensorFlow


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-base", required=True, help="directory or s3:// URI holding NAME/VERSION/")
    parser.add_argument("--model-name", action="append", default=[],
                        help="model to serve (repeat for several)")
    parser.add_argument("--all-models", action="store_true",
                        help="also serve every model in the model base, including those exported later")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--grpc-port", type=int, default=8500)
    parser.add_argument("--rest-port", type=int, default=8501, help="REST port; 0 picks one, -1 disables")
    parser.add_argument("--metrics-port", type=int, default=8502, help="Prometheus port; -1 disables")
    parser.add_argument("--max-versions", type=int, default=2, help="newest versions kept loaded")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between model-base polls")
    parser.add_argument("--max-payload-bytes", type=int, default=None,
                        help="largest request accepted (default: serving.predictor.DEFAULT_MAX_PAYLOAD_BYTES)")
    parser.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS,
                        help="largest encoded image accepted, in pixels (read from its header before decoding; "
                             f"default {DEFAULT_MAX_IMAGE_PIXELS})")
    parser.add_argument("--batching", action="store_true", help="merge concurrent requests into batches")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout-ms", type=float, default=5.0)
    parser.add_argument("--cache-dir", help="where versions from s3:// are downloaded (default: a temp dir)")
    security_flags.add_server(parser)  # TLS on gRPC and REST; --token-hashes: a token for Predict


def run(args: argparse.Namespace) -> int:
    if not args.model_name and not args.all_models:
        print("error: give --model-name NAME (repeatable) or --all-models")
        return 2
    from serving.server import ServerConfig, make_server  # TensorFlow: only once the arguments are good

    payload = {} if args.max_payload_bytes is None else {"max_payload_bytes": args.max_payload_bytes}
    try:
        server = make_server(ServerConfig(
            model_base=args.model_base, model_names=tuple(args.model_name), host=args.host,
            grpc_port=args.grpc_port, rest_port=None if args.rest_port < 0 else args.rest_port,
            metrics_port=None if args.metrics_port < 0 else args.metrics_port,
            max_versions=args.max_versions, poll_interval_s=args.poll_interval,
            batching=args.batching,
            max_batch_size=args.max_batch_size, batch_timeout_s=args.batch_timeout_ms / 1000,
            cache_dir=args.cache_dir, all_models=args.all_models, max_image_pixels=args.max_image_pixels,
            tls=security_flags.server_tls(args), tokens=security_flags.token_file(args), **payload))
    except ValueError as exc:  # also SecurityConfigError
        print(f"error: {exc}")
        return 2
    except OSError as exc:  # a taken port (saga.ports.PortInUse): one line naming it
        print(f"saga serve: {exc}", file=sys.stderr, flush=True)
        return 1
    server.start()
    served = ", ".join(args.model_name) + (" and every model in the base" if args.all_models else "")
    print(f"serving {served.removeprefix(' and ')} from {args.model_base}: gRPC :{server.grpc_port}  "
          f"REST :{server.rest_port}  metrics :{server.metrics_port}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    print("shutting down", flush=True)
    server.stop()
    return 0
