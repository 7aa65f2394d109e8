"""The camera's evidence from EXIF: read the same way everywhere, and malformed values are missing, not crashes."""

import math
import shutil
from fractions import Fraction

import numpy as np
import pytest
from conftest import ISS, exiftool, exiftool_write, jpeg_bytes
from PIL import Image, TiffImagePlugin

from tagger.camera import MISSING, SIZE
from tagger.decode import decode, iter_decoded

PHOTO = ISS / "iss052e033191.jpg"


def test_a_real_photo_agrees_with_exiftool():
    pixels, camera = decode(PHOTO.read_bytes(), (64, 64))
    assert camera.shape == (SIZE,) and pixels.shape == (64, 64, 3)
    truth = exiftool(PHOTO)[0]
    exposure = truth["ExifIFD:ExposureTime"]
    exposure = float(Fraction(exposure)) if isinstance(exposure, str) else float(exposure)
    assert camera[0] == pytest.approx(math.log(exposure), abs=1e-4)
    assert camera[1] == pytest.approx(math.log(float(truth["ExifIFD:ISO"])), abs=1e-4)
    assert camera[2] == pytest.approx(math.log(float(str(truth["ExifIFD:FocalLength"]).split()[0])), abs=1e-4)
    assert camera[3] == pytest.approx(float(truth["ExifIFD:FNumber"]), abs=1e-4)
    assert list(camera[4:]) == [0, 0, 0, 0]


def test_a_photo_without_exif_is_all_missing():
    _, camera = decode(jpeg_bytes(np.zeros((8, 8, 3), np.uint8)), (8, 8))
    assert np.array_equal(camera, MISSING)


@pytest.mark.parametrize("fields, missing", [
    ({0x829A: TiffImagePlugin.IFDRational(0, 1)}, [1, 1, 1, 1]),  # zero exposure
    ({0x829A: TiffImagePlugin.IFDRational(-1, 100), 0x8827: 400}, [1, 0, 1, 1]),  # negative exposure
    ({0x8827: 5_000_000}, [1, 1, 1, 1]),  # ISO in the millions
    ({0x920A: "wide"}, [1, 1, 1, 1]),  # text where a number belongs
    ({0x829D: TiffImagePlugin.IFDRational(1, 0)}, [1, 1, 1, 1]),  # division by zero
    ({0x8827: (100, 200)}, [1, 1, 1, 1]),  # two values where one belongs
    ({0x829A: TiffImagePlugin.IFDRational(1, 250), 0x8827: 6400, 0x920A: 28, 0x829D: 2.8}, [0, 0, 0, 0]),
])
def test_absurd_or_malformed_values_count_as_missing(fields, missing):
    _, camera = decode(_photo(fields), (8, 8))
    assert list(camera[4:]) == missing
    assert np.isfinite(camera).all() and all(camera[i] == 0 for i in range(4) if missing[i])


def _photo(fields: dict) -> bytes:
    """A small JPEG whose Exif IFD holds ``fields`` (tag number -> value) as given."""
    exif = Image.Exif()
    exif.get_ifd(0x8769).update(fields)
    return jpeg_bytes(np.full((16, 16, 3), 80, np.uint8), exif=exif.tobytes())


def test_mangled_exif_bytes_are_missing_not_a_crash(tmp_path):
    data = bytearray(PHOTO.read_bytes())
    start = data.index(b"Exif\x00\x00")
    data[start + 20:start + 200] = bytes(180)  # zero the IFD entries
    _, camera = decode(bytes(data), (8, 8))
    assert camera.shape == (SIZE,) and np.isfinite(camera).all()


def test_stripped_photo_seen_by_tag_and_train_alike(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PHOTO, folder / "a.jpg")
    shutil.copy(PHOTO, folder / "b.jpg")
    exiftool_write("-EXIF:all=", folder / "b.jpg")
    decoded = {d.path.name: d.camera for d in iter_decoded(folder, ["a.jpg", "b.jpg"], (8, 8))}
    assert np.array_equal(decoded["a.jpg"], decode(PHOTO.read_bytes(), (8, 8))[1])
    assert np.array_equal(decoded["b.jpg"], MISSING)
