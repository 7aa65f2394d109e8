"""The camera's evidence: how a photo was taken, from its EXIF, as numbers a model can read.

Night and aurora frames are shot at ISO 5,000-16,000 and 1/6-1/3 s on wide
lenses, volcanoes at 1/500 s on 180-800 mm lenses, stars at 1-2 s.  Four
EXIF fields carry that; each becomes one number (the logarithm, for the
three that span orders of magnitude) and one missing-value indicator.  A
value that is absent, not a number, or outside what a camera can do (zero
or negative exposure, ISO in the millions) counts as missing, never as a
crash: many photos arrive with EXIF stripped or mangled.

Read from the same ``PIL.Image`` that :mod:`tagger.decode` opens, so
``train``, ``evaluate`` and ``tag`` all read it the same way.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: EXIF tag, name, plausible range (inclusive), and whether the model reads its logarithm.
FIELDS = (
    (0x829A, "exposure_time_s", (1e-5, 60.0), True),
    (0x8827, "iso", (10.0, 409_600.0), True),
    (0x920A, "focal_length_mm", (1.0, 2_000.0), True),
    (0x829D, "f_number", (0.5, 64.0), False),
)
EXIF_IFD = 0x8769
#: Length of the evidence vector: a value and a missing indicator per field.
SIZE = 2 * len(FIELDS)
#: The evidence of a photo without EXIF.
MISSING = np.array([0.0] * len(FIELDS) + [1.0] * len(FIELDS), np.float32)
DESCRIPTION = ("EXIF exposure time (log s), ISO (log), focal length (log mm), f-number; each with a missing "
               "indicator; absent, malformed or implausible values count as missing")


def evidence(image: Image.Image) -> np.ndarray:
    """The ``SIZE`` numbers for an open ``PIL.Image`` (:data:`MISSING` where it has no usable EXIF)."""
    try:
        exif = image.getexif().get_ifd(EXIF_IFD)
    except Exception:  # Pillow raises many kinds on mangled EXIF; all mean "no evidence"
        return MISSING.copy()
    values: list[float] = []
    missing: list[float] = []
    for tag, _, (low, high), logarithm in FIELDS:
        number = _number(exif.get(tag))
        if number is not None and low <= number <= high:
            values.append(math.log(number) if logarithm else number)
            missing.append(0.0)
        else:
            values.append(0.0)
            missing.append(1.0)
    return np.array(values + missing, np.float32)


def _number(value: Any) -> float | None:
    """A finite float from an EXIF value (rational, int, or a one-element tuple); None otherwise."""
    if isinstance(value, (tuple, list)):
        value = value[0] if len(value) == 1 else None
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) else None
