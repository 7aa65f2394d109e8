"""Photos as the review page shows them: Pillow only, thumbnails kept in OUTPUT's state folder.

A thumbnail needs no model: importing TensorFlow for the first one took
seconds and half a gigabyte.  Decoding a large JPEG at a reduced scale
(Pillow's draft mode) makes one in tens of milliseconds, and keeping it in
``OUTPUT/.terc-tag/thumbnails/`` makes a reopened page instant even on an
archive of thousands of photos.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from PIL import Image, ImageOps

from tagger.decode import open_scaled
from tagger.discover import STATE_DIR_NAME
from tagger.outputs import atomic_write, temp_folder

THUMBNAILS_DIR_NAME = "thumbnails"


def display_image(data: bytes, longest: int = 512) -> Image.Image:
    """The photo as a person sees it (EXIF orientation applied, RGB), at most ``longest`` pixels wide or high.

    Within the same pixel limit as tagging (:func:`tagger.decode.open_scaled`), so a JPEG of a gigapixel
    shows, and a PNG bomb is refused with :class:`tagger.decode.DecodeError`.
    """
    with open_scaled(data, (longest, longest)) as image:
        shown = ImageOps.exif_transpose(image).convert("RGB")
    shown.thumbnail((longest, longest))
    return shown


def jpeg(path: Path, longest: int) -> bytes:
    """The photo at ``path`` as a JPEG at most ``longest`` pixels wide or high."""
    buffer = io.BytesIO()
    display_image(path.read_bytes(), longest).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class ThumbnailCache:
    """Thumbnails of OUTPUT's copies, one file per photo, remade when its copy changes.

    A cached file carries its copy's modification time: a correction or a
    new version of the photo changes it, and the thumbnail is made again in
    place, so the folder holds one file per photo.  The time is set after
    the file is written, so a half-written one never matches.  Where the
    state folder cannot be written (read-only, full), the thumbnail is
    served uncached.
    """

    def __init__(self, output: Path, longest: int):
        self.output, self.longest = Path(output), longest
        self.folder = self.output / STATE_DIR_NAME / THUMBNAILS_DIR_NAME

    def path_for(self, key: str) -> Path:
        digest = hashlib.sha256(f"{self.longest}/{key}".encode("utf-8", "surrogateescape")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.jpg"

    def get(self, copy: Path, key: str) -> bytes:
        """The thumbnail of ``copy``, the photo ``key`` (its path inside OUTPUT)."""
        modified = copy.stat().st_mtime_ns
        cached = self.path_for(key)
        try:
            if cached.stat().st_mtime_ns == modified:
                return cached.read_bytes()
        except OSError:
            pass
        data = jpeg(copy, self.longest)
        try:
            atomic_write(cached, data, 0o644, temp_folder(self.output))
            os.utime(cached, ns=(modified, modified))
        except OSError:
            pass
        return data
