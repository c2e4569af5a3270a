"""Drawing one synthetic endoscopy-like frame.

Every frame is pink-red tissue with smooth shading, specular glints, sensor noise and the dark
circular border of an endoscope. Classes differ in colour, texture and shape, strongly enough that
a small CNN separates them at 32-64 px within an epoch or two (other parts' tests rely on that):
a dark-red raised blob (polyp), a pale yellow-white patch (ulcer), dark vessel lines, a blue dyed
blob, plain tissue, a dark lumen with folds (pylorus), bright red spots (bleeding), and a pale
two-tone boundary (z-line).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("polyp", "ulcer", "vessels", "dyed", "normal", "pylorus", "bleeding", "z-line")
_SUPERSAMPLE = 2  # draw at 2x and downscale: smooth edges without depending on antialias support


@dataclass(frozen=True)
class Scene:
    """What stays fixed across the frames of one video (or one still image)."""

    tint: tuple[float, float, float]
    center: tuple[float, float]  # lesion centre, fractions of the frame
    scale: float  # lesion size, fraction of the frame
    angle: float


def random_scene(rng: np.random.Generator) -> Scene:
    tint = (float(rng.uniform(195, 215)), float(rng.uniform(80, 100)), float(rng.uniform(85, 105)))
    center = (float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6)))
    # Lesions cover a good part of the frame: the class signal must dominate the pixel statistics
    # for a small CNN to pick it up in the few dozen steps of a test.
    return Scene(tint=tint, center=center, scale=float(rng.uniform(0.24, 0.32)),
                 angle=float(rng.uniform(0, 2 * np.pi)))


def jitter(scene: Scene, rng: np.random.Generator) -> Scene:
    """The next frame of a video: the camera drifts a little."""
    dx, dy = rng.normal(0, 0.03, size=2)
    cx = float(np.clip(scene.center[0] + dx, 0.3, 0.7))
    cy = float(np.clip(scene.center[1] + dy, 0.3, 0.7))
    return Scene(scene.tint, (cx, cy), float(np.clip(scene.scale * rng.uniform(0.9, 1.1), .22, .34)),
                 scene.angle + float(rng.normal(0, 0.1)))


def _blob(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, r: float,
          fill: tuple[int, ...]) -> None:
    """An irregular roundish polygon: lesions are never perfect circles."""
    n = 14
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radii = r * rng.uniform(0.8, 1.15, size=n)
    draw.polygon([(cx + rr * np.cos(a), cy + rr * np.sin(a)) for a, rr in zip(angles, radii)],
                 fill=fill)


def _lesion(kind: str, draw: ImageDraw.ImageDraw, rng: np.random.Generator, scene: Scene,
            big: int) -> None:
    cx, cy, r = scene.center[0] * big, scene.center[1] * big, scene.scale * big
    if kind == "polyp":
        _blob(draw, rng, cx, cy, r, (150, 35, 45, 255))
        _blob(draw, rng, cx - r * 0.25, cy - r * 0.25, r * 0.45, (190, 60, 70, 255))
    elif kind == "ulcer":
        _blob(draw, rng, cx, cy, r * 1.1, (238, 228, 190, 255))
        _blob(draw, rng, cx, cy, r * 0.5, (250, 245, 215, 255))
    elif kind == "vessels":
        width = max(3, big // 14)
        for i in range(5):
            y0 = big * (0.1 + 0.2 * i) + rng.normal(0, big * 0.03)
            xs = np.linspace(0, big, 9)
            ys = y0 + np.cumsum(rng.normal(0, big * 0.04, size=9))
            draw.line(list(zip(xs, ys)), fill=(95, 20, 45, 255), width=width)
    elif kind == "dyed":
        _blob(draw, rng, cx, cy, r * 1.2, (55, 85, 185, 255))
    elif kind == "pylorus":
        for k in range(6):
            a = scene.angle + k * np.pi / 3
            draw.line([(cx, cy), (cx + 2.2 * r * np.cos(a), cy + 2.2 * r * np.sin(a))],
                      fill=(150, 50, 60, 255), width=max(2, big // 40))
        _blob(draw, rng, cx, cy, r * 0.8, (35, 8, 15, 255))
    elif kind == "bleeding":
        for _ in range(7):
            x, y = rng.uniform(0.15, 0.85, size=2) * big
            _blob(draw, rng, x, y, big * rng.uniform(0.04, 0.08), (235, 15, 15, 255))
    elif kind == "z-line":
        ys = big * (scene.center[1] + np.cumsum(rng.normal(0, 0.03, size=9)))
        top = list(zip(np.linspace(0, big, 9), ys))
        draw.polygon([(0, big), *top, (big, big)], fill=(232, 200, 195, 255))
    elif kind != "normal":
        raise ValueError(f"unknown synthetic class {kind!r}")


def draw_frame(kind: str, scene: Scene, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB frame of ``size`` x ``size`` pixels; deterministic given ``rng``'s state."""
    big = size * _SUPERSAMPLE
    # Tissue: the scene's tint, modulated by smooth low-frequency shading.
    shade = Image.fromarray((rng.uniform(0.85, 1.1, size=(4, 4)) * 255 / 1.1).astype(np.uint8))
    shade_arr = np.asarray(shade.resize((big, big), Image.Resampling.BICUBIC), np.float32) / 232
    base = np.stack([shade_arr * c for c in scene.tint], axis=-1)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image, "RGBA")
    _lesion(kind, draw, rng, scene, big)
    for _ in range(3):  # specular glints from the endoscope's light
        x, y = rng.uniform(0.1, 0.9, size=2) * big
        rr = big * rng.uniform(0.01, 0.025)
        draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=(255, 250, 245, 220))
    image = image.filter(ImageFilter.GaussianBlur(radius=_SUPERSAMPLE * 0.6))
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, np.float32)
    pixels += rng.normal(0, 5, size=pixels.shape)
    # The endoscope's round field of view: dark outside a circle.
    yy, xx = np.mgrid[0:size, 0:size]
    dist = np.hypot(xx - (size - 1) / 2, yy - (size - 1) / 2) / (size / 2)
    pixels *= np.clip(1.9 - dist, 0.05, 1.0)[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
