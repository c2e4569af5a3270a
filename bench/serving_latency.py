"""Serving latency benchmark (not a test): gRPC and REST per-frame latency against an in-process
call of the same SavedModel on the same frames, one-stream fps, and throughput at concurrency 8
with and without server-side batching. The server is ``saga serve`` in its own process; the three
ways of calling, and a bare gRPC round trip (GetModelStatus, no model call), take turns frame by
frame.

    .venv/bin/python bench/serving_latency.py [--frames 400] [--size 64]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc  # noqa: E402

from serving.client import GrpcFrameClient, RestFrameClient  # noqa: E402
from serving.export import export_model  # noqa: E402


def demo_model(size: int) -> keras.Model:
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35, weights=None,
                                          include_top=False)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalMaxPooling2D()(base.output))
    return keras.Model(base.input, out)


def frames(n: int, size: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [tf.io.encode_jpeg(rng.integers(0, 255, (size * 2, size * 2, 3), dtype=np.uint8)).numpy()
            for _ in range(n)]


def interleaved_latencies(calls: dict[str, object], data: list[bytes]) -> dict[str, np.ndarray]:
    """Per-frame latency of every call on the same frames, taking turns frame by frame (in a rotating
    order) so that whatever else the machine does hits all of them alike."""
    names = list(calls)
    for frame in data[:10]:
        for name in names:
            calls[name](frame)  # warm-up
    out: dict[str, list[float]] = {name: [] for name in names}
    for i, frame in enumerate(data):
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            start = time.perf_counter()
            calls[name](frame)
            out[name].append(time.perf_counter() - start)
    return {name: np.array(v) for name, v in out.items()}


def throughput(make_client, data: list[bytes], concurrency: int, seconds: float) -> float:
    count = [0] * concurrency
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        client = make_client()
        j = i
        while time.perf_counter() < stop:
            client.classify(data[j % len(data)])
            count[i] += 1
            j += concurrency
        client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count) / seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(base: str, batching: bool) -> tuple[subprocess.Popen, str, str]:
    """``saga serve`` as its own process, as a CAD front end would reach it."""
    grpc_port, rest_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "saga.cli.main", "--log-level", "WARNING", "serve", "--model-base", base,
           "--model-name", "demo", "--host", "127.0.0.1", "--grpc-port", str(grpc_port),
           "--rest-port", str(rest_port), "--metrics-port", "-1"]
    if batching:
        cmd += ["--batching", "--max-batch-size", "8", "--batch-timeout-ms", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/demo", timeout=2) as r:
                if r.status == 200:
                    return proc, f"127.0.0.1:{grpc_port}", f"127.0.0.1:{rest_port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("saga serve did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each throughput run")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="saga-bench-")
    result = export_model(demo_model(args.size), base, "demo", backbone="MobileNetV2", image_size=args.size,
                          class_names=["a", "b", "c"])
    data = frames(args.frames, args.size)
    results: dict[str, float] = {}
    loaded = tf.saved_model.load(str(Path(base) / "demo" / str(result.version)))
    serving_default = loaded.signatures["serving_default"]
    for batching in (False, True):
        proc, grpc_addr, rest_addr = start_server(base, batching)
        try:
            if not batching:
                grpc_client, rest_client = GrpcFrameClient(grpc_addr, "demo"), RestFrameClient(rest_addr, "demo")
                status_channel = grpc.insecure_channel(grpc_addr)
                status = model_service_pb2_grpc.ModelServiceStub(status_channel).GetModelStatus
                status_request = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "demo"})
                lat = interleaved_latencies({
                    "inproc": lambda f: serving_default(image_bytes=tf.constant([f])),
                    "grpc": grpc_client.classify, "rest": rest_client.classify,
                    "grpc_status": lambda f: status(status_request, timeout=2)}, data)
                for name, values in lat.items():
                    results[f"{name}_p50_ms"] = float(np.percentile(values, 50) * 1000)
                    results[f"{name}_p99_ms"] = float(np.percentile(values, 99) * 1000)
                start = time.perf_counter()
                for frame in data:
                    grpc_client.classify(frame)
                results["one_stream_fps"] = len(data) / (time.perf_counter() - start)
                grpc_client.close()
                rest_client.close()
                status_channel.close()
            key = "batched" if batching else "unbatched"
            results[f"c8_{key}_fps"] = throughput(lambda: GrpcFrameClient(grpc_addr, "demo"), data, 8, args.seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for name, value in results.items():
        print(f"{name:24s} {value:9.2f}")
    print(f"grpc p50 / in-process p50   {results['grpc_p50_ms'] / results['inproc_p50_ms']:.2f}x (target <= 1.2x)")
    print(f"grpc p99 / in-process p99   {results['grpc_p99_ms'] / results['inproc_p99_ms']:.2f}x")
    print(f"bare gRPC call / in-process {results['grpc_status_p50_ms'] / results['inproc_p50_ms']:.2f}x at p50 "
          "(GetModelStatus: what any gRPC call costs, no model call)")
    print(f"rest p50 / in-process p50   {results['rest_p50_ms'] / results['inproc_p50_ms']:.2f}x (target <= 1.5x)")
    print(f"rest p99 / in-process p99   {results['rest_p99_ms'] / results['inproc_p99_ms']:.2f}x")
    print(f"one stream                  {results['one_stream_fps']:.1f} fps (target >= 25)")
    print(f"batched / unbatched at c=8  {results['c8_batched_fps'] / results['c8_unbatched_fps']:.2f}x "
          f"(target >= 1.5x)")


if __name__ == "__main__":
    main()
