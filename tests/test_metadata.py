import io
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from tagger import TERC_TAGS
from tagger.metadata import MetadataError, _add_keywords, add_keywords, merge, read_keywords, vocabulary_tags
from conftest import EXAMPLES, ISS, as_list, exiftool, exiftool_write, jpeg_scan_offset, pixels

PHOTO = ISS / "iss040e092721.jpg"  # tagged Volcano, Day by TERC


def test_reads_terc_tags_among_other_keywords():
    keywords = read_keywords(PHOTO.read_bytes())
    assert "Windows on Earth" in keywords
    assert vocabulary_tags(keywords, TERC_TAGS) == ["Volcano", "Day"]


def test_hierarchical_subject_counts_by_its_leaf(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes((ISS / "iss052e033191.jpg").read_bytes())
    exiftool_write("-XMP-lr:HierarchicalSubject=Surface|Aurora", photo)
    assert vocabulary_tags(read_keywords(photo.read_bytes()), TERC_TAGS) == ["Aurora", "Day"]


def test_vocabulary_match_is_case_insensitive_and_canonical():
    assert vocabulary_tags(["day", "NIGHT", "sunrise sunset", "Daylight"], TERC_TAGS) == ["Sunrise Sunset", "Night", "Day"]


def test_merge_keeps_everything_and_adds_no_duplicates():
    assert merge(["Day", "#ISS"], ["day", "Night", "Night"]) == ["Day", "#ISS", "Night"]


def test_written_tags_show_up_in_exiftool_like_hand_made_ones(tmp_path):
    out = tmp_path / "out.jpg"
    out.write_bytes(add_keywords(PHOTO.read_bytes(), ["Night", "Stars"]))
    (before,), (after,) = exiftool(PHOTO), exiftool(out)
    for field in ("XMP-dc:Subject", "IPTC:Keywords"):
        assert as_list(after[field]) == as_list(before[field]) + ["Night", "Stars"]
    assert after["IFD0:XPKeywords"] == "Night;Stars"
    # Every other field is unchanged, except what exiv2 must move or, by the Exif standard, drop: the
    # thumbnail's offset, and TIFF image-structure tags that the standard does not allow in a JPEG's IFD0.
    ignore = {"IFD1:ThumbnailOffset", "IFD0:PhotometricInterpretation","SourceFile", "System:FileName", "System:Directory", "System:FileSize", "System:FileModifyDate",
              "System:FileAccessDate", "System:FileInodeChangeDate", "System:FilePermissions",
              "XMP-dc:Subject", "IPTC:Keywords", "IFD0:XPKeywords", "File:ExifByteOrder",
              "IPTC:CurrentIPTCDigest", "File:CurrentIPTCDigest", "XMP-x:XMPToolkit"}
    lost = {k: v for k, v in before.items() if k not in ignore and after.get(k) != v}
    assert lost == {}


def test_pixels_are_untouched_and_scan_data_identical(tmp_path):
    data = PHOTO.read_bytes()
    out = tmp_path / "out.jpg"
    out.write_bytes(add_keywords(data, ["Night"]))
    assert np.array_equal(pixels(PHOTO), pixels(out))
    assert out.read_bytes().endswith(data[jpeg_scan_offset(data):])  # compressed pixels copied, not re-encoded


def test_rerun_adds_nothing():
    once = add_keywords(PHOTO.read_bytes(), ["Night", "Volcano"])
    assert add_keywords(once, ["night", "VOLCANO"]) == once
    assert read_keywords(once).count("Volcano") == 1


def test_exiv2_cli_agrees(tmp_path):
    if subprocess.run(["which", "exiv2"], capture_output=True).returncode:
        pytest.skip("exiv2 CLI not installed")
    out = tmp_path / "out.jpg"
    out.write_bytes(add_keywords(PHOTO.read_bytes(), ["Moon"]))
    printed = subprocess.run(["exiv2", "-pi", str(out)], capture_output=True, text=True).stdout
    assert "Moon" in printed


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_png_and_tiff(tmp_path, fmt):
    buffer = io.BytesIO()
    Image.open(PHOTO).save(buffer, fmt)
    out = tmp_path / f"out.{fmt.lower()}"
    out.write_bytes(add_keywords(buffer.getvalue(), ["Aurora"]))
    (info,) = exiftool(out)
    assert "Aurora" in as_list(info.get("XMP-dc:Subject"))
    assert vocabulary_tags(read_keywords(out.read_bytes()), TERC_TAGS) == ["Aurora"]
    assert np.array_equal(pixels(out), np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))


@pytest.mark.parametrize("photo", sorted(ISS.glob("*.jpg")) + sorted(EXAMPLES.glob("*.jpg")), ids=lambda p: p.name)
def test_header_only_edit_gives_the_bytes_of_a_whole_file_edit(photo):
    """add_keywords sends only a JPEG's header through exiv2; the result must not differ."""
    data = photo.read_bytes()
    assert add_keywords(data, ["Night", "Moon"]) == _add_keywords(data, ["Night", "Moon"])


def test_bytes_after_the_image_are_kept():
    data = PHOTO.read_bytes() + b"TRAILER: a camera maker's extra data"
    tagged = add_keywords(data, ["Aurora"])
    assert tagged.endswith(b"TRAILER: a camera maker's extra data")
    assert tagged == _add_keywords(data, ["Aurora"])


def test_a_header_cut_short_is_edited_like_the_whole_file():
    cut = PHOTO.read_bytes()[:jpeg_scan_offset(PHOTO.read_bytes()) // 2]
    outcomes = []
    for edit in (add_keywords, _add_keywords):
        try:
            outcomes.append(edit(cut, ["Day"]))
        except MetadataError as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]


def test_garbage_raises_metadata_error():
    with pytest.raises(MetadataError):
        add_keywords(b"not an image at all", ["Day"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_real_files_never_crash(data):
    """Flip, cut and splice bytes of a real tagged photo: only MetadataError may come out."""
    original = PHOTO.read_bytes()
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 20))):
        position = data.draw(st.integers(0, min(len(mutated) - 1, 20000)))  # metadata sits at the start
        mutated[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
    mutated = bytes(mutated)
    for call in (lambda: read_keywords(mutated), lambda: add_keywords(mutated, ["Day", "Night"])):
        try:
            call()
        except MetadataError:
            pass
    assert PHOTO.read_bytes() == original
