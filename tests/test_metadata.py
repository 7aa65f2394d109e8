import io
import subprocess

import numpy as np
import pytest
from conftest import ISS, as_list, exiftool, exiftool_write, jpeg_bytes, jpeg_scan_offset, pixels
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tagger import TERC_TAGS
from tagger.metadata import (
    MetadataError,
    add_keywords,
    edit_keywords,
    merge,
    read_keywords,
    vocabulary_tags,
    write_keywords,
)

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
    found = vocabulary_tags(["day", "NIGHT", "sunrise sunset", "Daylight"], TERC_TAGS)
    assert found == ["Sunrise Sunset", "Night", "Day"]


def test_merge_keeps_everything_and_adds_no_duplicates():
    assert merge(["Day", "#ISS"], ["day", "Night", "Night"]) == ["Day", "#ISS", "Night"]


def test_written_tags_show_up_in_exiftool_like_hand_made_ones(tmp_path):
    out = tmp_path / "out.jpg"
    out.write_bytes(add_keywords(PHOTO.read_bytes(), ["Night", "Stars"]))
    (before,), (after,) = exiftool(PHOTO), exiftool(out)
    for field in ("XMP-dc:Subject", "IPTC:Keywords"):
        assert as_list(after[field]) == as_list(before[field]) + ["Night", "Stars"]
    assert after["IFD0:XPKeywords"] == "Night;Stars"
    # Every other field is unchanged (test_lossless.py checks this on many more files).
    ignore = {"SourceFile", "System:FileName", "System:Directory", "System:FileSize", "System:FileModifyDate",
              "System:FileAccessDate", "System:FileInodeChangeDate", "System:FilePermissions",
              "XMP-dc:Subject", "IPTC:Keywords", "IFD0:XPKeywords", "File:CurrentIPTCDigest", "Photoshop:IPTCDigest"}
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


def test_a_new_iptc_block_in_a_tiff_gets_the_type_readers_expect(tmp_path):
    """IPTC-NAA (33723) as LONGs, as Photoshop and ExifTool write it: exiftool -validate warned of UNDEFINED."""
    buffer = io.BytesIO()
    Image.open(PHOTO).save(buffer, "TIFF")
    out = tmp_path / "out.tif"
    out.write_bytes(add_keywords(buffer.getvalue(), ["Aurora"]))
    done = subprocess.run(["exiftool", "-validate", "-warning", "-a", "-s", str(out)], capture_output=True, text=True)
    assert "IPTC-NAA" not in done.stdout, done.stdout
    assert "Aurora" in as_list(exiftool(out)[0].get("IPTC:Keywords"))


def test_bytes_after_the_image_are_kept():
    data = PHOTO.read_bytes() + b"TRAILER: a camera maker's extra data"
    assert add_keywords(data, ["Aurora"]).endswith(b"TRAILER: a camera maker's extra data")


def test_a_jpeg_cut_short_inside_its_metadata_is_refused():
    cut = PHOTO.read_bytes()[:jpeg_scan_offset(PHOTO.read_bytes()) // 2]
    with pytest.raises(MetadataError, match="not a well-formed JPEG"):
        add_keywords(cut, ["Day"])


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


def test_a_field_that_cannot_be_written_safely_is_left_alone_and_named(tmp_path):
    from hostile import with_oversized_xmp

    plain = jpeg_bytes(np.zeros((16, 16, 3), np.uint8))
    garbage_exif = b"Exif\0\0II*\0" + (0xFFFFFF00).to_bytes(4, "little") + bytes(64)
    broken = plain[:2] + b"\xff\xe1" + (len(garbage_exif) + 2).to_bytes(2, "big") + garbage_exif + plain[2:]
    data, notes = write_keywords(broken, ["Night"])
    assert notes == ["EXIF XPKeywords not written: TIFF structure cut short"]
    assert data.count(garbage_exif) == 1  # the broken block is kept as it was
    out = tmp_path / "broken.jpg"
    out.write_bytes(data)
    (meta,) = exiftool(out)
    assert as_list(meta["XMP-dc:Subject"]) == ["Night"] and as_list(meta["IPTC:Keywords"]) == ["Night"]

    data, notes = write_keywords(with_oversized_xmp(plain), ["Night"])  # its only XMP, nearly full
    assert len(notes) == 1 and "a JPEG segment holds at most 65,535" in notes[0]


def test_no_field_writable_means_the_photo_is_refused():
    from tagger.metadata.write import EMPTY_TIFF

    with pytest.raises(MetadataError, match="not a JPEG, TIFF or PNG"):
        add_keywords(b"GIF89a" + bytes(100), ["Day"])
    with pytest.raises(MetadataError, match="loops back"):
        looped = bytearray(EMPTY_TIFF)
        looped[10:14] = (8).to_bytes(4, "little")  # IFD0's next IFD is IFD0 itself
        add_keywords(bytes(looped), ["Day"])


DIGEST = ["-IPTCDigest", "-CurrentIPTCDigest"]


def test_removing_a_keyword_takes_it_out_of_every_field_and_nothing_else(tmp_path):
    tagged, removed = tmp_path / "tagged.jpg", tmp_path / "removed.jpg"
    tagged.write_bytes(add_keywords(PHOTO.read_bytes(), ["Night", "Stars"]))
    removed.write_bytes(edit_keywords(tagged.read_bytes(), [], remove=["NIGHT"]).data)
    (before,), (after,) = exiftool(PHOTO), exiftool(removed)
    for field in ("XMP-dc:Subject", "IPTC:Keywords"):
        assert as_list(after[field]) == as_list(before[field]) + ["Stars"]
    assert after["IFD0:XPKeywords"] == "Stars"
    ignore = {"System:FileName", "System:Directory", "System:FileModifyDate", "System:FileAccessDate",
              "System:FileInodeChangeDate", "System:FileSize", "SourceFile", "XMP-dc:Subject", "IPTC:Keywords",
              "IFD0:XPKeywords", "File:CurrentIPTCDigest", "Photoshop:IPTCDigest"}  # digests: the next test
    assert {k: v for k, v in before.items() if k not in ignore and after.get(k) != v} == {}
    assert np.array_equal(pixels(PHOTO), pixels(removed))


def test_adding_then_removing_gives_back_the_xmp_and_iptc_bytes():
    original = PHOTO.read_bytes()
    round_trip = edit_keywords(add_keywords(original, ["Night", "Moon"]), [], remove=["Night", "Moon"]).data
    for marker in (b"http://ns.adobe.com/xap/1.0/\0", b"Photoshop 3.0\0"):  # the XMP and IPTC segments
        start = original.index(marker)
        length = int.from_bytes(original[start - 2:start], "big")
        assert original[start - 4:start - 2 + length] in round_trip


def test_removal_keeps_the_iptc_digest_current(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(PHOTO.read_bytes())
    exiftool_write("-IPTCDigest=new", photo)  # make the original's digest current
    (before,) = exiftool(photo)
    assert before["Photoshop:IPTCDigest"] == before["File:CurrentIPTCDigest"]
    photo.write_bytes(edit_keywords(add_keywords(photo.read_bytes(), ["Moon"]), ["Night"], remove=["Day"]).data)
    (after,) = exiftool(photo)
    assert after["Photoshop:IPTCDigest"] == after["File:CurrentIPTCDigest"] != before["File:CurrentIPTCDigest"]
    assert vocabulary_tags(read_keywords(photo.read_bytes()), TERC_TAGS) == ["Volcano", "Night", "Moon"]


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_removal_in_png_and_tiff(fmt):
    buffer = io.BytesIO()
    Image.open(PHOTO).save(buffer, fmt)
    once = add_keywords(buffer.getvalue(), ["Aurora", "Moon"])
    assert vocabulary_tags(read_keywords(edit_keywords(once, [], remove=["aurora"]).data), TERC_TAGS) == ["Moon"]


def test_removing_what_is_not_there_changes_nothing():
    data = PHOTO.read_bytes()
    edited = edit_keywords(data, [], remove=["Aurora"])
    assert edited.data == data and edited.notes == []
    assert "Windows on Earth" in edited.had and "Volcano" in edited.had  # what the fields held


RDF_NS, DC_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "http://purl.org/dc/elements/1.1/"


@pytest.mark.parametrize("packet, before", [
    (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{RDF_NS}"/></x:xmpmeta>', []),  # as some phones write
    ('<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="t"/>', []),
    ('<x:xmpmeta xmlns:x="adobe:ns:meta/">\n</x:xmpmeta>', []),
    ((f'<rdf:RDF xmlns:rdf="{RDF_NS}"><rdf:Description rdf:about="" xmlns:dc="{DC_NS}"><dc:subject/>'
      '</rdf:Description></rdf:RDF>'), []),
    ((f"<rdf:RDF xmlns:rdf='{RDF_NS}'><rdf:Description rdf:about='a&amp;b' xmlns:dc='{DC_NS}'>"
      "<dc:subject xml:lang='en'><rdf:Seq><rdf:li>Earth</rdf:li></rdf:Seq></dc:subject></rdf:Description></rdf:RDF>"),
     ["Earth"]),
    ((f'<rdf:RDF xmlns:rdf="{RDF_NS}"><rdf:Description rdf:about="" xmlns:dc="{DC_NS}"><dc:subject><rdf:Bag>'
      '<rdf:li/><rdf:li>Earth</rdf:li><rdf:li></rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF>'),
     ["", "Earth", ""]),
])
def test_every_valid_xmp_shape_gets_the_keywords_and_keeps_its_entries(packet, before):
    from tagger.metadata import xmp

    assert xmp.subject(packet.encode()) == before
    edited = xmp.edit_subject(packet.encode(), [], ["Night", "R&D"])
    assert xmp.subject(edited) == before + ["Night", "R&D"]
    assert xmp.subject(xmp.edit_subject(edited, ["night"], [])) == before + ["R&D"]
