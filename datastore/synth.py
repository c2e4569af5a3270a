"""``synthesize``: a deterministic synthetic endoscopy dataset as a folder-per-class JPEG tree.

Without videos: ``OUT/<class>/<class>_0000.jpg`` (Kvasir v2 layout). With ``videos=N``:
``OUT/<class>/video_00/frame_0000.jpg`` (Nerthus layout), frames of one video sharing their scene;
group them with ``--group-by '^([^/]+/video_[0-9]+)/'``. The same arguments always give
byte-identical files. ``corrupt=N`` adds N broken files for fault tests.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datastore.synth_draw import KINDS, draw_frame, jitter, random_scene

VIDEO_GROUP_REGEX = r"^([^/]+/video_[0-9]+)/"
_JPEG_QUALITY = 92


@dataclass
class SynthResult:
    """What was written."""

    out: Path
    classes: list[str]
    images: list[Path] = field(default_factory=list)
    corrupt: list[Path] = field(default_factory=list)


def _check(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _encode(image: "object") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)  # type: ignore[attr-defined]
    return buffer.getvalue()


def synthesize(out: str | Path, *, classes: int = 3, per_class: int = 40, size: int = 64,
               seed: int = 0, videos: int = 0, corrupt: int = 0) -> SynthResult:
    """Writes ``classes`` x ``per_class`` JPEG frames of ``size`` px under ``out``.

    Classes are the first ``classes`` of polyp, ulcer, vessels, dyed, normal, pylorus, bleeding,
    z-line. ``videos`` > 0 spreads each class's frames over that many video folders. Raises
    ValueError naming a bad argument.
    """
    _check("classes", classes, 2, len(KINDS))
    _check("per_class", per_class, 1, 100_000)
    _check("size", size, 16, 1024)
    _check("seed", seed, 0, 2**32 - 1)
    _check("videos", videos, 0, per_class)
    _check("corrupt", corrupt, 0, 10_000)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"output {str(root)!r} exists and is not a directory")
    kinds = list(KINDS[:classes])
    result = SynthResult(out=root, classes=sorted(kinds))
    for class_index, kind in enumerate(kinds):
        class_dir = root / kind
        for video, frames in _videos(per_class, videos):
            # One generator per (class, video): adding classes or frames elsewhere never
            # changes the existing files.
            rng = np.random.default_rng([seed, class_index, video + 1])
            scene = random_scene(rng)
            folder = class_dir / f"video_{video:02d}" if videos else class_dir
            for frame in frames:
                if videos:
                    scene, name = jitter(scene, rng), f"frame_{frame:04d}.jpg"
                else:
                    rng = np.random.default_rng([seed, class_index, 0, frame])
                    scene, name = random_scene(rng), f"{kind}_{frame:04d}.jpg"
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / name
                path.write_bytes(_encode(draw_frame(kind, scene, size, rng)))
                result.images.append(path)
    result.corrupt = _write_corrupt(root, kinds, corrupt, seed, size)
    return result


def _videos(per_class: int, videos: int) -> list[tuple[int, range]]:
    """Frame index ranges per video (video 0 only, when not in video layout)."""
    if not videos:
        return [(0, range(per_class))]
    bounds = np.linspace(0, per_class, videos + 1).round().astype(int)
    return [(v, range(bounds[v], bounds[v + 1])) for v in range(videos)]


def _write_corrupt(root: Path, kinds: list[str], count: int, seed: int, size: int) -> list[Path]:
    """Broken files in three flavours: a truncated JPEG, random bytes named .jpg, an empty .png."""
    written = []
    rng = np.random.default_rng([seed, 999])
    for k in range(count):
        folder = root / kinds[k % len(kinds)]
        folder.mkdir(parents=True, exist_ok=True)
        flavour = k % 3
        if flavour == 0:
            scene = random_scene(rng)
            whole = _encode(draw_frame(kinds[0], scene, size, rng))
            path, data = folder / f"corrupt_{k:03d}_truncated.jpg", whole[: len(whole) // 2]
        elif flavour == 1:
            path, data = folder / f"corrupt_{k:03d}_noise.jpg", rng.bytes(512)
        else:
            path, data = folder / f"corrupt_{k:03d}_empty.png", b""
        path.write_bytes(data)
        written.append(path)
    return written
