"""Serving latency benchmark (not a test): gRPC and REST per-frame latency against an in-process
call of the same SavedModel on the same frames, one-stream fps, and throughput at concurrency 8
with and without server-side batching.

    .venv/bin/python bench/serving_latency.py [--frames 200] [--size 64]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from serving.client import GrpcFrameClient, RestFrameClient  # noqa: E402
from serving.export import export_model  # noqa: E402
from serving.server import ServerConfig, make_server  # noqa: E402


def demo_model(size: int) -> keras.Model:
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35, weights=None,
                                          include_top=False)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalMaxPooling2D()(base.output))
    return keras.Model(base.input, out)


def frames(n: int, size: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [tf.io.encode_jpeg(rng.integers(0, 255, (size * 2, size * 2, 3), dtype=np.uint8)).numpy()
            for _ in range(n)]


def latencies(call, data: list[bytes]) -> np.ndarray:
    for frame in data[:10]:
        call(frame)  # warm-up
    out = []
    for frame in data:
        start = time.perf_counter()
        call(frame)
        out.append(time.perf_counter() - start)
    return np.array(out)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each throughput run")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="saga-bench-")
    export_model(demo_model(args.size), base, "demo", backbone="MobileNetV2", image_size=args.size,
                 class_names=["a", "b", "c"])
    data = frames(args.frames, args.size)
    results: dict[str, float] = {}
    for batching in (False, True):
        server = make_server(ServerConfig(base, ("demo",), host="127.0.0.1", grpc_port=0, rest_port=0,
                                          batching=batching, max_batch_size=8, batch_timeout_s=0.004))
        server.start()
        grpc_addr, rest_addr = f"127.0.0.1:{server.grpc_port}", f"127.0.0.1:{server.rest_port}"
        if not batching:
            model = server.registry.get("demo")
            signature = model.signature(None)
            inproc = latencies(lambda f: model.run(signature, {"image_bytes": np.array([f], dtype=object)}), data)
            grpc_client, rest_client = GrpcFrameClient(grpc_addr, "demo"), RestFrameClient(rest_addr, "demo")
            over_grpc = latencies(grpc_client.classify, data)
            over_rest = latencies(rest_client.classify, data)
            for name, lat in (("inproc", inproc), ("grpc", over_grpc), ("rest", over_rest)):
                results[f"{name}_p50_ms"] = float(np.percentile(lat, 50) * 1000)
                results[f"{name}_p99_ms"] = float(np.percentile(lat, 99) * 1000)
            start = time.perf_counter()
            for frame in data:
                grpc_client.classify(frame)
            results["one_stream_fps"] = len(data) / (time.perf_counter() - start)
        key = "batched" if batching else "unbatched"
        results[f"c8_{key}_fps"] = throughput(lambda: GrpcFrameClient(grpc_addr, "demo"), data, 8, args.seconds)
        server.stop()
    for name, value in results.items():
        print(f"{name:24s} {value:9.2f}")
    print(f"grpc p50 / in-process p50   {results['grpc_p50_ms'] / results['inproc_p50_ms']:.2f}x (target <= 1.2x)")
    print(f"grpc p99 / in-process p99   {results['grpc_p99_ms'] / results['inproc_p99_ms']:.2f}x")
    print(f"rest p50 / in-process p50   {results['rest_p50_ms'] / results['inproc_p50_ms']:.2f}x (target <= 1.5x)")
    print(f"rest p99 / in-process p99   {results['rest_p99_ms'] / results['inproc_p99_ms']:.2f}x")
    print(f"one stream                  {results['one_stream_fps']:.1f} fps (target >= 25)")
    print(f"batched / unbatched at c=8  {results['c8_batched_fps'] / results['c8_unbatched_fps']:.2f}x "
          f"(target >= 1.5x)")


if __name__ == "__main__":
    main()
