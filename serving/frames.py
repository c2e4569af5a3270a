"""Frame sources (video file, folder of images, one image) and the annotated video writer (OpenCV)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class SourceError(ValueError):
    """The source cannot be read as a video, an image folder or an image."""


def iter_frames(source: str | Path) -> Iterator[np.ndarray]:
    """BGR uint8 frames of a video file, of the images in a folder (sorted by name), or one image."""
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for file in files:
            frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if frame is None:
                raise SourceError(f"{file} is not a readable image")
            yield frame
        return
    if path.suffix.lower() in IMAGE_SUFFIXES:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise SourceError(f"{path} is not a readable image")
        yield frame
        return
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f"{path} is neither an image nor a video OpenCV can open")
    try:
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield frame
        if count == 0:
            raise SourceError(f"{path} has no readable frames")
    finally:
        capture.release()


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """The frame as JPEG bytes, what the exported model's default signature takes."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SourceError("OpenCV could not encode a frame as JPEG")
    return data.tobytes()


class AnnotatedWriter:
    """Writes frames with a label drawn on them to a video file (mp4v for .mp4, MJPG otherwise)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray, text: str) -> None:
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
            height, width = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise SourceError(f"cannot write video {self.path}")
        annotated = frame.copy()
        scale = max(0.4, frame.shape[1] / 640)
        cv2.putText(annotated, text, (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                    (0, 255, 0), max(1, int(2 * scale)), cv2.LINE_AA)
        self._writer.write(annotated)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
