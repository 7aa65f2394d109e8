"""The tag stage end to end, through the library API (no CLI)."""

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import pixels

from tagger import TERC_TAGS
from tagger.metadata import read_keywords, vocabulary_tags
from tagger.tagging.pipeline import FolderError, tag_folder


def digests(folder: Path) -> dict[str, str]:
    """Every file's hash, except terc-tag's own state."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".terc-tag" not in p.parts}


def test_tagged_copy_mirrors_input_and_originals_are_untouched(iss_photos, tmp_path, session):
    (iss_photos / "deeper" / "still").mkdir(parents=True)
    (iss_photos / "iss052e033191.jpg").rename(iss_photos / "deeper" / "still" / "Day photo.JPG")
    (iss_photos / "notes.txt").write_text("not a photo")
    before = digests(iss_photos)
    out = tmp_path / "tagged"
    summary = tag_folder(iss_photos, out, session)

    assert digests(iss_photos) == before
    assert summary.failed == [] and len(summary.tagged) == 6
    assert summary.skipped == [("notes.txt", "not a JPEG, TIFF or PNG")]
    photos = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.suffix.lower() == ".jpg")
    assert photos == sorted(k for k in before if k != "notes.txt")
    for name in photos:
        assert np.array_equal(pixels(iss_photos / name), pixels(out / name))
        original = read_keywords((iss_photos / name).read_bytes())
        tagged = read_keywords((out / name).read_bytes())
        assert tagged[: len(original)] == original  # everything kept, in order
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert sorted(r["file"] for r in rows) == photos
    for row in rows:
        probabilities = {t: float(row[t]) for t in TERC_TAGS}
        # The CSV rounds to 4 decimals: a tag within that of the threshold may fall either way.
        sure = [t for t in TERC_TAGS if abs(probabilities[t] - 0.5) > 1e-4]
        expected = [t for t in sure if probabilities[t] >= 0.5]
        tags = row["tags"].split(";") if row["tags"] else []
        assert [t for t in tags if t in sure] == expected
        written = vocabulary_tags(read_keywords((out / row["file"]).read_bytes()), TERC_TAGS)
        assert set(tags) <= set(written)
    assert summary.tag_counts  # the model tagged something


def test_model_finds_the_obvious_tags(iss_photos, tmp_path, session):
    """Real photos from the model's test split: Aurora, Inside ISS and Day are easy ones."""
    out = tmp_path / "tagged"
    tag_folder(iss_photos, out, session)
    rows = {r["file"]: r["tags"].split(";") for r in csv.DictReader((out / "predictions.csv").open())}
    assert "Aurora" in rows["iss038e040838.jpg"]
    assert "Inside ISS" in rows["iss049e009128.jpg"]
    assert "Day" in rows["iss052e033191.jpg"]


def test_rerun_is_incremental_and_adds_nothing(iss_photos, tmp_path, session):
    out = tmp_path / "tagged"
    tag_folder(iss_photos, out, session)
    first = digests(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.jpg")}
    again = tag_folder(iss_photos, out, session)
    assert again.tagged == [] and again.unchanged == 6
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.jpg")} == mtimes
    assert digests(out) == first

    changed = iss_photos / "iss038e040043.jpg"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    third = tag_folder(iss_photos, out, session)
    assert third.tagged == ["iss038e040043.jpg"] and third.unchanged == 5
    forced = tag_folder(iss_photos, out, session, force=True)
    assert len(forced.tagged) == 6
    assert digests(out) == first  # re-tagging from the original gives the same bytes


def test_new_threshold_retags(iss_photos, tmp_path, session):
    out = tmp_path / "tagged"
    tag_folder(iss_photos, out, session)
    assert len(tag_folder(iss_photos, out, session, threshold=0.3).tagged) == 6


def test_dry_run_writes_nothing(iss_photos, tmp_path, session):
    out = tmp_path / "tagged"
    summary = tag_folder(iss_photos, out, session, dry_run=True)
    assert summary.pending == 6 and not out.exists()
    tag_folder(iss_photos, out, session)
    before = digests(out)
    assert tag_folder(iss_photos, out, session, dry_run=True).pending == 0
    assert digests(out) == before


def test_bad_photos_are_reported_copied_and_the_rest_tagged(iss_photos, tmp_path, session):
    (iss_photos / "empty.jpg").write_bytes(b"")
    (iss_photos / "text.jpg").write_text("hello")
    good = (iss_photos / "iss038e040043.jpg").read_bytes()
    (iss_photos / "cut.jpg").write_bytes(good[: len(good) // 4])
    out = tmp_path / "tagged"
    summary = tag_folder(iss_photos, out, session)
    reasons = dict(summary.failed)
    assert set(reasons) == {"empty.jpg", "text.jpg", "cut.jpg"}
    assert "empty" in reasons["empty.jpg"] and "not a readable image" in reasons["text.jpg"]
    assert len(summary.tagged) == 6
    assert (out / "text.jpg").read_text() == "hello"  # every photo reaches OUTPUT, unchanged if untaggable


@pytest.mark.parametrize("layout, message", [
    (lambda tmp: (tmp / "missing", tmp / "out"), "does not exist"),
    (lambda tmp: (tmp / "in", tmp / "in" / "out"), "inside INPUT"),
    (lambda tmp: (tmp / "in" / "sub", tmp / "in"), "inside OUTPUT"),
])
def test_folder_errors_are_one_clear_line(tmp_path, session, layout, message):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    src, dst = layout(tmp_path)
    with pytest.raises(FolderError, match=message):
        tag_folder(src, dst, session)


def test_unwritable_output(tmp_path, iss_photos, session, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    if os.geteuid() == 0:  # root may write anywhere: let the permission check answer as for anyone else
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(FolderError, match="not writable"):
        tag_folder(iss_photos, out, session)
    assert list(out.iterdir()) == []


def test_empty_folder_is_fine(tmp_path, session):
    (tmp_path / "in").mkdir()
    summary = tag_folder(tmp_path / "in", tmp_path / "out", session)
    assert summary.tagged == [] and summary.failed == []
