"""Server-side batching: concurrent requests for the same model call are merged into one call.

No extra threads: the first request of a batch leads it. It waits until the batch is full or
``timeout_s`` has passed, runs the merged inputs once and hands every follower its slice. When the
merged call fails (e.g. one request holds bytes that are not an image) each request is run on its
own, so an error reaches only the request that caused it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

Arrays = dict[str, np.ndarray]
RunFn = Callable[[Mapping[str, np.ndarray]], Arrays]


@dataclass
class _Batch:
    items: list[Mapping[str, np.ndarray]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    results: list[Arrays | BaseException] = field(default_factory=list)


class BatchingQueue:
    """Merges concurrent :meth:`submit` calls with equal keys, up to ``max_batch_size`` examples."""

    def __init__(self, max_batch_size: int = 8, timeout_s: float = 0.005,
                 on_batch: Callable[[Hashable, int], None] | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if not 0 <= timeout_s <= 1:
            raise ValueError(f"batch timeout must be in [0, 1] s, got {timeout_s}")
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_s
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self._open: dict[Hashable, _Batch] = {}

    def submit(self, key: Hashable, run: RunFn, inputs: Mapping[str, np.ndarray]) -> Arrays:
        """Runs ``inputs`` (arrays sharing their first dimension) through ``run``, maybe merged
        with other requests of the same ``key``; returns this request's outputs or raises its error."""
        size = len(next(iter(inputs.values())))
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None or sum(batch.sizes) + size > self.max_batch_size
            if leader:
                if batch is not None:
                    batch.full.set()  # too small for us: let its leader go now
                batch = self._open[key] = _Batch()
            index = len(batch.items)
            batch.items.append(inputs)
            batch.sizes.append(size)
            if sum(batch.sizes) >= self.max_batch_size:
                self._close(key, batch)
        if leader:
            batch.full.wait(self.timeout_s)
            with self._lock:
                self._close(key, batch)
            self._run(key, batch, run)
        else:
            batch.done.wait()
        result = batch.results[index]
        if isinstance(result, BaseException):
            raise result
        return result

    def _close(self, key: Hashable, batch: _Batch) -> None:
        batch.full.set()
        if self._open.get(key) is batch:
            del self._open[key]

    def _run(self, key: Hashable, batch: _Batch, run: RunFn) -> None:
        try:
            if len(batch.items) == 1:
                batch.results = [_call(run, batch.items[0])]
                return
            try:
                merged = {k: np.concatenate([item[k] for item in batch.items]) for k in batch.items[0]}
                outputs = run(merged)
            except Exception:  # noqa: BLE001 - retried one by one so the error finds its request
                batch.results = [_call(run, item) for item in batch.items]
                return
            bounds = np.cumsum([0] + batch.sizes)
            batch.results = [{k: v[a:b] for k, v in outputs.items()} for a, b in zip(bounds, bounds[1:])]
        finally:
            if self._on_batch is not None:
                self._on_batch(key, sum(batch.sizes))
            batch.done.set()


def _call(run: RunFn, inputs: Mapping[str, np.ndarray]) -> Arrays | BaseException:
    try:
        return run(inputs)
    except Exception as exc:  # noqa: BLE001 - handed to the request's own thread
        return exc
