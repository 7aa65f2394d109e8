"""Stage 2: turn photo bytes into model-sized RGB arrays.

This is the only decode and resize path: ``train``, ``evaluate`` and ``tag``
all call :func:`decode`, so the model sees exactly the pixels (and camera
evidence, :mod:`tagger.camera`) it was trained on.  A photo is read the way
a person sees it: EXIF orientation is applied, CMYK / greyscale / 16-bit /
alpha images become 8-bit RGB.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

from tagger.camera import evidence
from tagger.discover import read_inside
from tagger.errors import TercTagError

#: Refuse to decode more than this many pixels (Pillow's own bomb limit, about
#: 89 MP; 4928x3280 is 16 MP).  The limit bounds memory, so it applies to the
#: pixels actually decoded: a baseline JPEG is decoded with DCT scaling at up to
#: 1/8 of its size, so one of up to 5.7 gigapixels (any JPEG: 65535x65535 is
#: 4.3) is decoded within it.  A progressive JPEG keeps every DCT coefficient of
#: the full image in memory while it decodes, and PNG and TIFF decode in full,
#: so for them the limit applies to the full size.
MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485  # None (no limit) is not an option here

#: Pillow's warnings that this module handles itself, as ``(message, category, module)`` of
#: ``warnings.filterwarnings``: the size limit is checked in :func:`open_scaled`, and a photo with
#: corrupt EXIF is used as stored.
HANDLED_WARNINGS = (("", Image.DecompressionBombWarning, ""), ("Corrupt EXIF data", UserWarning, r"PIL\."))
_IGNORED = [("ignore", re.compile(message, re.I) if message else None, category,  # as warnings.filters holds them
             re.compile(module) if module else None, 0) for message, category, module in HANDLED_WARNINGS]


def _ignore_handled_warnings() -> None:
    """Add the filters for :data:`HANDLED_WARNINGS` where they are missing, when a photo is opened.

    Not on import: importing a library changes nothing global.  Not per call in a
    ``warnings.catch_warnings()`` either: filters are process-wide and decoding runs in
    several threads, so one thread would restore them while another decodes.
    """
    for (message, category, module), entry in zip(HANDLED_WARNINGS, _IGNORED, strict=True):
        if entry not in warnings.filters:
            warnings.filterwarnings("ignore", message, category, module)


class DecodeError(TercTagError):
    """A photo that cannot be turned into pixels; the message says why."""


def decode_photo(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """The pixels of :func:`decode` alone."""
    return decode(data, size)[0]


def decode(data: bytes, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``data`` into a ``(height, width, 3)`` uint8 array of ``size`` (w, h), and its camera evidence.

    JPEGs are decoded with DCT scaling (``Image.draft``) to the smallest
    power-of-two reduction that is still at least ``size``: full-size ISS
    photos decode about 4x faster and the result is then resized anyway.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        image = open_scaled(data, size)
        camera = evidence(image)
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
        return np.asarray(rgb.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8), camera
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"decompression bomb refused: {exc}") from None
    except Image.UnidentifiedImageError:
        raise DecodeError("not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(f"corrupt image data: {exc}") from None


def open_scaled(data: bytes, size: tuple[int, int]) -> Image.Image:
    """``data`` opened, nothing decoded yet, a JPEG set to decode with DCT scaling to at least ``size``.

    Raises :class:`DecodeError` where what would be decoded is over :data:`MAX_PIXELS`,
    and Pillow's own errors where ``data`` is no image.
    """
    image = _open(data)
    width, height = image.size
    if image.format == "JPEG":
        image.draft("RGB", size)
    decoded = image.size if image.format == "JPEG" and not image.info.get("progressive") else (width, height)
    if decoded[0] * decoded[1] > MAX_PIXELS:
        scaled = f" (decoded at {decoded[0]}x{decoded[1]})" if decoded != (width, height) else ""
        raise DecodeError(f"{width}x{height} pixels{scaled} is over the {MAX_PIXELS:,} pixel limit "
                          "(decompression bomb?)")
    return image


def _open(data: bytes) -> Image.Image:
    """``Image.open``, but a JPEG over Pillow's bomb limit is opened anyway (lazily: nothing is decoded yet),
    for :func:`open_scaled` to apply the limit to the pixels it will decode."""
    _ignore_handled_warnings()
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        if not data.startswith(b"\xff\xd8"):
            raise DecodeError(f"decompression bomb refused: {exc}") from None
        return JpegImagePlugin.JpegImageFile(io.BytesIO(data))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        if pixels.max(initial=0) > 255:  # 16-bit range
            pixels = pixels / 257.0
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Composite onto black, the colour of space behind most ISS photos.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


@dataclass
class Decoded:
    """One photo after stage 2: its bytes and ``fstat`` (for the writer) and pixels."""

    path: Path  # relative to the folder read
    data: bytes | None
    pixels: np.ndarray | None
    error: str | None = None
    stat: os.stat_result | None = None
    camera: np.ndarray | None = None  # tagger.camera.evidence


def read_and_decode(root: Path, rel: Path, size: tuple[int, int], follow_symlinks: bool = False) -> Decoded:
    """Read ``root/rel`` (a regular file inside ``root`` only: :func:`read_inside`) and decode it."""
    try:
        data, st = read_inside(root, rel, follow_symlinks)
    except FileNotFoundError:
        return Decoded(rel, None, None, "vanished before it could be read")
    except OSError as exc:
        return Decoded(rel, None, None, f"cannot read: {exc.strerror or exc}")
    try:
        pixels, camera = decode(data, size)
        return Decoded(rel, data, pixels, stat=st, camera=camera)
    except DecodeError as exc:
        return Decoded(rel, data, None, str(exc), st)


def iter_decoded(root: Path, photos: Iterable[Path], size: tuple[int, int], workers: int | None = None,
                 prefetch: int = 64, follow_symlinks: bool = False) -> Generator[Decoded, None, None]:
    """Decode ``root/rel`` for each of ``photos`` in parallel threads, in order, at most ``prefetch`` in flight.

    Pillow releases the GIL while decoding, so threads overlap decoding with
    inference; the bound keeps memory flat however large the folder is.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending: deque = deque()
        for rel in photos:
            pending.append(pool.submit(read_and_decode, Path(root), Path(rel), size, follow_symlinks))
            if len(pending) >= prefetch:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def batched(items: Iterable, batch_size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
