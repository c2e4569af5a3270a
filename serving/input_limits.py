"""Checks of request values that are cheap to make before the model runs.

- Floats must be finite: a NaN or infinite pixel gives NaN probabilities, which JSON cannot carry.
- Encoded images must not exceed a pixel limit. The size is read from the image header (Pillow
  parses headers without decoding), so a tiny PNG that decodes to 100 megapixels is refused in
  microseconds instead of costing seconds of decoding and gigabytes of memory in the graph.
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import numpy as np
from PIL import Image

from serving.errors import InvalidInput

# 4K UHD frames (8.3 MP) fit twice; endoscopy frames are 0.3-2 MP.
DEFAULT_MAX_IMAGE_PIXELS = 16_000_000
_FORMATS = ("JPEG", "PNG", "GIF", "BMP")  # what tf.io.decode_image decodes


def check_values(inputs: Mapping[str, np.ndarray], max_image_pixels: int) -> None:
    """InvalidInput naming the input and example that breaks a limit."""
    for key, value in inputs.items():
        if value.dtype.kind == "f":
            if not np.isfinite(value).all():
                raise InvalidInput(f"input {key!r} holds NaN or infinite values")
        elif value.dtype.kind in "OS":
            for i, item in enumerate(value.reshape(-1)):
                pixels = _pixels(item)
                if pixels and pixels[0] * pixels[1] > max_image_pixels:
                    w, h = pixels
                    raise InvalidInput(f"image {i} of input {key!r} is {w}x{h} pixels ({w * h / 1e6:.1f} MP); "
                                       f"the limit is {max_image_pixels / 1e6:g} MP (saga serve --max-image-pixels)")


def _pixels(data: object) -> tuple[int, int] | None:
    """(width, height) from an image's header; None when it is no image Pillow knows (TF then
    reports what is wrong with it)."""
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=_FORMATS) as image:
                return image.size
        except Image.DecompressionBombError as exc:  # larger than Pillow's own limit: huge
            size = exc.args[0] if exc.args else ""
            raise InvalidInput(f"an image is far beyond the pixel limit ({size})") from None
        except Exception:  # noqa: BLE001 - not an image Pillow reads: the graph's decoder says why
            return None
