"""``saga classify SOURCE --server HOST:PORT --model NAME``: classify the frames of a video, an
image folder or an image against a TF Serving endpoint, print per-frame results and a summary."""
from __future__ import annotations

import argparse
import time

from saga.cli import security_flags
from saga.security import SecurityConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video file, folder of images, or one image")
    parser.add_argument("--server", required=True, help="HOST:PORT of the gRPC (or, with --rest, REST) API")
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--version", type=int, default=None, help="model version (default: newest)")
    parser.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    parser.add_argument("--fps", type=float, default=25.0, help="real-time target in frames/s (default 25)")
    parser.add_argument("--pace", action="store_true", help="send frames at --fps like a live camera")
    parser.add_argument("--timeout", type=float, default=None,
                        help="deadline per frame, s (default: serving.client.DEFAULT_TIMEOUT_S)")
    parser.add_argument("--out", help="write the video with each frame's label drawn on it")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    security_flags.add_client(parser)


def run(args: argparse.Namespace) -> int:
    from serving.client import (DEFAULT_TIMEOUT_S, ClassifyError, FrameResult, GrpcFrameClient, RestFrameClient,
                                StreamStats)
    from serving.frames import AnnotatedWriter, SourceError, encode_jpeg, iter_frames

    if args.timeout is None:
        args.timeout = DEFAULT_TIMEOUT_S
    if args.fps <= 0 or args.timeout <= 0:
        print("error: --fps and --timeout must be positive")
        return 2
    client_type = RestFrameClient if args.rest else GrpcFrameClient
    try:
        security = security_flags.client(args)
        client = client_type(args.server, args.model, version=args.version, timeout_s=args.timeout,
                             security=security)
    except SecurityConfigError as exc:
        print(f"error: {exc}")
        return 2
    writer = AnnotatedWriter(args.out, args.fps) if args.out else None
    stats = StreamStats(target_fps=args.fps)
    try:
        for index, frame in enumerate(iter_frames(args.source)):
            if args.pace:
                time.sleep(max(0.0, stats.started + index / args.fps - time.perf_counter()))
            start = time.perf_counter()
            try:
                label, probability, version = client.classify(encode_jpeg(frame))
            except ClassifyError as exc:
                stats.failures += 1
                print(f"frame {index:5d}  error: {exc}", flush=True)
                text = "error"
            else:
                result = FrameResult(index, label, probability, time.perf_counter() - start, version)
                stats.add(result)
                text = f"{label} {probability:.2f}"
                if not args.quiet:
                    print(f"frame {index:5d}  {label:<20s} p={probability:.3f}  "
                          f"{result.latency_s * 1000:7.1f} ms", flush=True)
            if writer is not None:
                writer.write(frame, text)
    except SourceError as exc:
        print(f"error: {exc}")
        return 2
    finally:
        client.close()
        if writer is not None:
            writer.close()
    summary = stats.summary()
    verdict = "meets" if summary["real_time"] else "misses"
    print(f"frames: {summary['frames']}  failures: {summary['failures']}")
    print(f"latency p50: {summary['p50_ms']:.1f} ms  p95: {summary['p95_ms']:.1f} ms")
    print(f"throughput: {summary['fps']:.1f} fps ({verdict} the {args.fps:g} fps real-time target)")
    print("classes: " + ", ".join(f"{k}={v}" for k, v in summary["classes"].items()))
    if args.out:
        print(f"annotated video: {args.out}")
    return 0 if summary["failures"] == 0 else 1
