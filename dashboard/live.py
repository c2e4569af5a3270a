"""Live updates: the optimizer's WatchStudy stream relayed to the browser as server-sent events.

The gRPC stream is read in a thread (grpcio blocks) and handed to the event loop; the browser gets
one ``event:`` per study event with the study's progress, and a comment every few seconds so that a
closed tab is noticed and its stream cancelled.
"""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, AsyncIterator

import grpc

from optimizer_svc.client import parameters
from saga.v1 import optimizer_pb2 as pb

KEEPALIVE_S = 10.0
_END = object()


def event_json(ev: pb.WatchStudyResponse) -> dict[str, Any]:
    study, trial = ev.study, ev.trial
    return {
        "event": ev.event, "study_id": study.id,
        "state": pb.StudyState.Name(study.state).removeprefix("STUDY_"),
        "finished": sum(p.trials_finished for p in study.phases), "total": sum(p.budget for p in study.phases),
        "running": study.trial_counts.get("TRIAL_RUNNING", 0),
        "trial": {"id": trial.id, "number": trial.number,
                  "state": pb.TrialState.Name(trial.state).removeprefix("TRIAL_"), "params": parameters(trial),
                  "value": trial.value if trial.has_value else None} if trial.id else None,
        "best": {"id": ev.best_trial.id, "value": ev.best_trial.value} if ev.HasField("best_trial") else None,
    }


async def relay(call) -> AsyncIterator[str]:
    """Server-sent events from a WatchStudy call (cancelled when the browser leaves)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def pump() -> None:
        try:
            for ev in call:
                loop.call_soon_threadsafe(queue.put_nowait, event_json(ev))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                failure = {"event": "failure", "message": e.details() or e.code().name}
                loop.call_soon_threadsafe(queue.put_nowait, failure)
        except RuntimeError:  # the loop closed while the server shut down
            return
        try:
            loop.call_soon_threadsafe(queue.put_nowait, _END)
        except RuntimeError:
            pass

    threading.Thread(target=pump, name="watch-relay", daemon=True).start()
    try:
        yield "retry: 3000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is _END:
                yield "event: end\ndata: {}\n\n"
                return
            yield f"event: {item['event']}\ndata: {json.dumps(item)}\n\n"
    finally:
        call.cancel()
