"""A short synthetic "endoscopy video" with known labels: frame sequences of each class (one
simulated camera pass per finding, frames jittered like a moving camera), one after another."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Video:
    path: Path
    labels: list[str]   # the true class of every frame, in order
    fps: float


def make_video(out: Path, *, classes: int, frames_per_class: int, size: int, seed: int,
               fps: float = 25.0, scratch: Path | None = None) -> Video:
    """Writes an MJPG ``.avi`` (OpenCV's codec that every build has) of ``classes`` scenes."""
    from datastore.synth import synthesize

    scratch = scratch or out.with_suffix("")
    result = synthesize(scratch, classes=classes, per_class=frames_per_class, size=size, seed=seed, videos=1)
    frames: list[tuple[str, Path]] = sorted(
        ((p.relative_to(scratch).parts[0], p) for p in result.images),
        key=lambda item: (result.classes.index(item[0]), item[1].name))
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out} (MJPG)")
    try:
        for _, path in frames:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None or image.shape[:2] != (size, size):
                raise RuntimeError(f"synthetic frame {path} is unreadable")
            writer.write(np.ascontiguousarray(image))
    finally:
        writer.release()
    return Video(path=out, labels=[label for label, _ in frames], fps=fps)
