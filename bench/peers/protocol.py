"""How every tuner is driven: ask/tell with a fixed number of trials in flight, timed the same way.

With ``in_flight`` = q, q points are asked for first; then the oldest running trial completes (its
loss is told) and a new point is asked for, so every proposal after the first q is made with q - 1
trials still running: what q workers with trials of equal duration see. ``in_flight`` = 1 is the
sequential loop. Proposal cost is CPU seconds of this process (BLAS and OpenMP pinned to one thread
by the runner), which a shared machine's load disturbs far less than wall time.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import deque
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(__file__))
from tasks import TASKS, Task  # noqa: E402


def at_bound(task: Task, point: dict[str, Any]) -> int:
    """How many float coordinates of ``point`` sit on a bound of their range (in their own scale)."""
    n = 0
    for name, d in task.space.items():
        if d["type"] != "float":
            continue
        lo, hi, v = d["low"], d["high"], float(point[name])
        if d.get("scale") == "log":
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        if min(abs(v - lo), abs(v - hi)) <= 1e-6 * (hi - lo):
            n += 1
    return n


def drive(task: Task, ask: Callable[[], tuple[Any, dict[str, Any]]], tell: Callable[[Any, float], None],
          evaluations: int, in_flight: int) -> dict[str, Any]:
    running: deque = deque()
    losses, seconds, bounds, points = [], [], [], []
    asked = 0
    while len(losses) < evaluations:
        while len(running) < in_flight and asked < evaluations:
            t0 = time.process_time()
            handle, point = ask()
            seconds.append(time.process_time() - t0)
            running.append((handle, point))
            asked += 1
        handle, point = running.popleft()
        loss = float(task.loss(point))
        tell(handle, loss)
        losses.append(loss)
        bounds.append(at_bound(task, point))
        points.append(point)
    return {"losses": losses, "proposal_cpu_s": seconds, "at_bound": bounds,
            "distinct": len({json.dumps(p, sort_keys=True) for p in points})}


def main(runner: Callable[[Task, str, int, int, int], dict[str, Any]]) -> None:
    """``driver.py TUNER TASK IN_FLIGHT EVALUATIONS OUT.jsonl SEED...``: one JSON line per seed."""
    tuner, task_name, q, evaluations, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    task = TASKS[task_name]
    for seed in map(int, sys.argv[6:]):
        t0 = time.perf_counter()
        row = runner(task, tuner, seed, q, evaluations)
        row.update(tuner=tuner, task=task_name, in_flight=q, seed=seed, wall_s=round(time.perf_counter() - t0, 2))
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{tuner} {task_name} q={q} seed={seed}: best {min(row['losses']):.4g} "
              f"({row['wall_s']:.0f}s)", flush=True)
