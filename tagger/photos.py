"""Photos read whole for fitting (training, code maps): decoded pixels, camera evidence and dihedral views.

Shared by :mod:`tagger.train` and :mod:`tagger.similar.codes`, which fit on the same
photos the same way; kept below both so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tagger.camera import SIZE as CAMERA_SIZE
from tagger.decode import DecodeError, decode
from tagger.discover import read_inside

#: Dihedral views of a square image: identity, flips, quarter turns, transposes.
VIEWS = (
    lambda a: a,
    lambda a: a[:, ::-1],
    lambda a: a[::-1, :],
    lambda a: a[::-1, ::-1],
    lambda a: np.rot90(a, 1),
    lambda a: np.rot90(a, 3),
    lambda a: a.transpose(1, 0, 2),
    lambda a: np.rot90(a, 2).transpose(1, 0, 2),
)


def read_photos(root: Path, names: Sequence[str], size: int, log: Callable[[str], object],
                follow_symlinks: bool = False) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The names that could be decoded, their pixels and their camera evidence (``tagger.camera``)."""
    kept, arrays, cameras = [], [], []
    for name in names:
        try:
            pixels, camera = decode(read_inside(root, name, follow_symlinks)[0], (size, size))
        except OSError as exc:
            log(f"skipping {name}: {exc.strerror or exc}")
            continue
        except DecodeError as exc:
            log(f"skipping {name}: {exc}")
            continue
        kept.append(name)
        arrays.append(pixels)
        cameras.append(camera)
    if not arrays:
        return kept, np.zeros((0, size, size, 3), np.uint8), np.zeros((0, CAMERA_SIZE), np.float32)
    return kept, np.stack(arrays), np.stack(cameras)
