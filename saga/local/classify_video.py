"""Classify every frame of a video against the serving endpoint, like ``saga classify`` does, and
score the answers against the video's known labels."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from saga.local.video import Video


def classify_video(video: Video, server: str, model: str, out: Path | None = None,
                   target_fps: float = 25.0) -> dict[str, Any]:
    """Per-frame latency (p50/p95 ms), throughput (fps), failures, class counts and accuracy."""
    from serving.client import ClassifyError, FrameResult, GrpcFrameClient, StreamStats
    from serving.frames import AnnotatedWriter, encode_jpeg, iter_frames

    client = GrpcFrameClient(server, model)
    writer = AnnotatedWriter(out, video.fps) if out else None
    stats = StreamStats(target_fps=target_fps)
    correct = 0
    errors: list[str] = []
    try:
        for index, frame in enumerate(iter_frames(video.path)):
            start = time.perf_counter()
            try:
                label, probability, version = client.classify(encode_jpeg(frame))
            except ClassifyError as e:
                stats.failures += 1
                errors.append(f"frame {index}: {e}")
                text = "error"
            else:
                stats.add(FrameResult(index, label, probability, time.perf_counter() - start, version))
                correct += index < len(video.labels) and label == video.labels[index]
                text = f"{label} {probability:.2f}"
            if writer is not None:
                writer.write(frame, text)
    finally:
        client.close()
        if writer is not None:
            writer.close()
    summary = stats.summary()
    if summary["failures"]:
        raise RuntimeError(f"{summary['failures']} of {summary['frames']} frames failed, e.g. {errors[0]}")
    summary["accuracy"] = correct / max(1, summary["frames"])
    summary["annotated_video"] = str(out) if out else None
    summary["video"] = str(video.path)
    return summary
