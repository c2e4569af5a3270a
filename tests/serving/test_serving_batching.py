"""The batching queue merges concurrent requests and keeps each error with its own request."""
from __future__ import annotations

import threading

import numpy as np

from serving.batching import BatchingQueue


def _run_concurrently(queue: BatchingQueue, run, values: list[float]) -> list[object]:
    results: list[object] = [None] * len(values)
    barrier = threading.Barrier(len(values))

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = queue.submit("m", run, {"x": np.array([values[i]])})["y"]
        except ValueError as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(values))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_share_model_calls_and_get_their_own_answers() -> None:
    calls: list[int] = []

    def run(inputs):
        calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}

    results = _run_concurrently(BatchingQueue(max_batch_size=8, timeout_s=0.2), run, [float(i) for i in range(8)])
    assert [r.tolist() for r in results] == [[2.0 * i] for i in range(8)]
    assert sum(calls) == 8 and len(calls) < 8 and max(calls) <= 8


def test_a_bad_request_fails_alone() -> None:
    def run(inputs):
        if np.any(inputs["x"] < 0):
            raise ValueError("negative input")
        return {"y": inputs["x"] + 1}

    results = _run_concurrently(BatchingQueue(max_batch_size=4, timeout_s=0.2), run, [1.0, -1.0, 2.0, 3.0])
    assert isinstance(results[1], ValueError)
    assert [results[i].tolist() for i in (0, 2, 3)] == [[2.0], [3.0], [4.0]]
