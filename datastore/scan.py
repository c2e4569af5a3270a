"""Finding and checking the images of a folder-per-class tree.

Layouts: Kvasir v2 (``SRC/<class>/*.jpg``) and Nerthus (``SRC/<class>/<video>/*.jpg``): the first
folder below ``SRC`` is the class, any depth below it is allowed. Every candidate is decoded with
Pillow, because a file that merely has a ``.jpg`` name may be truncated or something else entirely,
and one bad file must not crash a training run hours later.
"""
from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from datastore.manifest import Skipped

EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}
# Pillow format -> the extension the object gets; TensorFlow's decode_image reads all three.
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "MPO": "jpg"}


@dataclass(frozen=True)
class Candidate:
    """A file found below a class folder."""

    path: Path
    rel: str  # '/'-separated, relative to the source root
    label: str


@dataclass(frozen=True)
class CheckedImage:
    """A file that decoded as a supported image."""

    candidate: Candidate
    sha256: str
    size: int
    ext: str


def find_files(src: Path) -> tuple[list[Candidate], list[Skipped]]:
    """All files below ``src`` sorted by relative path: image candidates, and the rest skipped."""
    if not src.is_dir():
        raise NotADirectoryError(f"dataset source {str(src)!r} is not a directory")
    candidates: list[Candidate] = []
    skipped: list[Skipped] = []
    for path in sorted(p for p in src.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(src).as_posix()
        parts = rel.split("/")
        if any(part.startswith(".") for part in parts):
            skipped.append(Skipped(rel, "hidden file"))
        elif len(parts) < 2:
            skipped.append(Skipped(rel, "not inside a class folder"))
        elif path.suffix.lower() not in EXTENSIONS:
            skipped.append(Skipped(rel, f"not an image extension ({', '.join(EXTENSIONS)})"))
        else:
            candidates.append(Candidate(path=path, rel=rel, label=parts[0]))
    return candidates, skipped


def check_image(candidate: Candidate) -> CheckedImage | Skipped:
    """Decodes the file fully; returns its hash and size, or why it cannot be used."""
    try:
        data = candidate.path.read_bytes()
    except OSError as exc:
        return Skipped(candidate.rel, f"unreadable: {exc.strerror or exc}")
    if not data:
        return Skipped(candidate.rel, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                image.load()  # verify() alone does not decode pixel data; truncation shows here
    except UnidentifiedImageError:
        return Skipped(candidate.rel, "not a decodable image: unrecognized format")
    except (OSError, SyntaxError, ValueError, EOFError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Reasons go into the manifest, which must be byte-stable: no object addresses.
        reason = re.sub(r" at 0x[0-9a-fA-F]+", "", str(exc)) or type(exc).__name__
        return Skipped(candidate.rel, f"not a decodable image: {reason}")
    if fmt not in FORMAT_EXT:
        return Skipped(candidate.rel, f"unsupported image format {fmt or 'unknown'}")
    return CheckedImage(candidate=candidate, sha256=hashlib.sha256(data).hexdigest(),
                        size=len(data), ext=FORMAT_EXT[fmt])

