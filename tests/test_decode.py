import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import ISS, ROOT, jpeg_bytes
from hostile import bomb_png
from PIL import Image

from tagger import decode as decode_module
from tagger.decode import DecodeError, decode_photo, iter_decoded

sys.path.insert(0, str(ROOT / "benchmarks"))
from big_photos import big_jpeg

SIZE = (64, 64)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_real_photo_becomes_model_sized_rgb():
    data = next(ISS.glob("*.jpg")).read_bytes()
    array = decode_photo(data, (224, 224))
    assert array.shape == (224, 224, 3) and array.dtype == np.uint8
    assert 10 < array.mean() < 245


def test_exif_orientation_is_applied():
    # A left-half-white picture stored rotated, with orientation 6 ("rotate 90 CW to view").
    seen = np.zeros((40, 80, 3), np.uint8)
    seen[:, :40] = 255
    stored = np.rot90(seen, 1)  # what a camera would store for orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_photo(jpeg_bytes(np.ascontiguousarray(stored), exif=exif.tobytes(), quality=95), (80, 40))
    assert decoded[:, :30].mean() > 200 and decoded[:, 50:].mean() < 50


@pytest.mark.parametrize("make", [
    lambda: Image.new("CMYK", (50, 30), (0, 255, 255, 0)),  # red in CMYK
    lambda: Image.new("L", (50, 30), 200),
    lambda: Image.new("RGBA", (50, 30), (255, 0, 0, 255)),
    lambda: Image.new("P", (50, 30), 3),
])
def test_other_modes_become_rgb(make):
    image = make()
    for data in (_encode(image, "PNG") if image.mode != "CMYK" else None, _encode(image, "TIFF")):
        if data is not None:
            assert decode_photo(data, SIZE).shape == (64, 64, 3)


def test_cmyk_jpeg_looks_red():
    buffer = io.BytesIO()
    Image.new("CMYK", (50, 30), (0, 255, 255, 0)).save(buffer, "JPEG")
    red = decode_photo(buffer.getvalue(), SIZE)
    assert red[..., 0].mean() > 200 and red[..., 1].mean() < 60


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    image = Image.fromarray(np.full((30, 50), 32768, np.uint16))
    grey = decode_photo(_encode(image, "PNG"), SIZE)
    assert 120 < grey.mean() < 135  # half of 65535 -> half of 255


def test_transparent_pixels_are_composited():
    image = Image.new("RGBA", (50, 30), (255, 255, 255, 0))
    assert decode_photo(_encode(image, "PNG"), SIZE).max() == 0


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"this is a text file, not a photo\n", "not a readable image"),
])
def test_garbage_gets_a_reason(data, message):
    with pytest.raises(DecodeError, match=message):
        decode_photo(data, SIZE)


def test_truncated_jpeg_is_an_error():
    data = next(ISS.glob("*.jpg")).read_bytes()
    with pytest.raises(DecodeError):
        decode_photo(data[: len(data) // 3], SIZE)


def test_decompression_bomb_is_refused():
    with pytest.raises(DecodeError, match="bomb|pixel limit"):
        decode_photo(bomb_png(), SIZE)


@pytest.mark.parametrize("width, height", [(10240, 9792), (16384, 12288)])  # over Pillow's warning, error limits
def test_a_jpeg_over_the_pixel_limit_is_decoded_at_the_scale_it_needs(tmp_path, width, height):
    """A 100- or 201-megapixel photo (medium format, a panorama) is decoded at 1/8 of its size, within the limit."""
    pixels = decode_photo(big_jpeg(tmp_path / "big.jpg", width, height).read_bytes(), SIZE)
    assert pixels.shape == (*SIZE, 3)
    left, right = pixels[:, 2, 0].mean(), pixels[:, -3, 0].mean()
    assert left < 40 and right > 215  # the red gradient, left to right


def test_the_limit_applies_to_the_full_size_of_a_progressive_jpeg_a_png_and_a_tiff(monkeypatch):
    """Those are decoded in full (a progressive JPEG holds every coefficient of the whole image while it
    decodes), so scaling does not bound their memory; a baseline JPEG of the same size passes."""
    monkeypatch.setattr(decode_module, "MAX_PIXELS", 64 * 64)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    assert decode_photo(_encode(image, "JPEG"), (16, 16)).shape == (16, 16, 3)  # decoded at 32x32
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", progressive=True)
    for data in (buffer.getvalue(), _encode(image, "PNG"), _encode(image, "TIFF")):
        with pytest.raises(DecodeError, match="256x256 pixels is over"):
            decode_photo(data, (16, 16))


def test_parallel_decoding_keeps_order_and_reports_failures(tmp_path):
    paths = []
    for i, source in enumerate(sorted(ISS.glob("*.jpg"))):
        paths.append(Path(f"{i}.jpg"))
        (tmp_path / paths[-1]).write_bytes(source.read_bytes())
    paths.insert(2, Path("missing.jpg"))
    results = list(iter_decoded(tmp_path, paths, SIZE, workers=3, prefetch=2))
    assert [r.path for r in results] == paths
    assert results[2].error.startswith("vanished")
    assert all(r.pixels is not None for i, r in enumerate(results) if i != 2)


def test_a_bomb_between_pillows_warning_and_error_limits_is_refused_too():
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DecodeError, match="bomb"):
        decode_photo(bomb_png(10000, 10000), SIZE)  # 100 MP: Pillow only warns
    assert not caught, "the decoder handles the size itself: Pillow's warning is not passed on"


def test_corrupt_exif_prints_nothing_even_from_many_threads(tmp_path):
    """What cron would mail: a fresh process's stderr, decoding in parallel threads."""
    from hostile import with_bad_exif

    for i in range(200):
        (tmp_path / f"{i}.jpg").write_bytes(with_bad_exif((ISS / "iss038e040838.jpg").read_bytes()))
    code = ("import sys; from pathlib import Path; from tagger.decode import iter_decoded;"
            "root = Path(sys.argv[1]); photos = sorted(p.relative_to(root) for p in root.glob('*.jpg'));"
            "results = list(iter_decoded(root, photos, (64, 64), workers=8, prefetch=16));"
            "print(sum(r.pixels is not None for r in results))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "200" and done.stderr == ""


def test_photos_are_shown_within_the_same_limit(tmp_path):
    """The review page's thumbnails and heat-map backgrounds: a 201-megapixel JPEG shows, a PNG bomb is refused."""
    from tagger.thumbnails import display_image

    shown = display_image(big_jpeg(tmp_path / "big.jpg", 16384, 12288).read_bytes(), 256)
    assert max(shown.size) == 256
    with pytest.raises(DecodeError, match="bomb"):
        display_image(bomb_png(), 256)
