"""`terc-tag correct`: a person's tags are written losslessly, kept by every later run, and learnt from."""

import csv
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DEFAULT_MODEL, ISS, as_list, downgrade_state, exiftool, exiftool_write, pixels

from tagger import TERC_TAGS
from tagger.cli import main
from tagger.labels import labels_from_metadata
from tagger.review.correct import CorrectionError, correct
from tagger.state import EditLock, State
from tagger.tagging import pipeline
from tagger.tagging.pipeline import tag_folder

AURORA, VOLCANO = "iss038e040838.jpg", "iss040e092721.jpg"  # the model tags them Aurora, and Day


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def session_module():
    from tagger.model import TaggerSession

    return TaggerSession(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def tagged_once(tmp_path_factory, session_module):
    """The ISS fixtures as new downloads (their keywords stripped, but VOLCANO's: Volcano, Day), tagged."""
    root = tmp_path_factory.mktemp("correct")
    incoming = shutil.copytree(ISS, root / "incoming")
    for photo in incoming.iterdir():
        if photo.name != VOLCANO:
            exiftool_write("-XMP-dc:Subject=", "-IPTC:Keywords=", photo)
    tag_folder(incoming, root / "tagged", session_module)
    return root


@pytest.fixture
def archive(tagged_once, tmp_path):
    """A fresh copy of the tagged archive: (INPUT, OUTPUT)."""
    shutil.copytree(tagged_once, tmp_path, dirs_exist_ok=True)
    return tmp_path / "incoming", tmp_path / "tagged"


def record(out: Path, name: str):
    state = State.reader(out)
    try:
        return state.get(name)
    finally:
        state.close()


def csv_row(out: Path, name: str) -> dict:
    with open(out / "predictions.csv", encoding="utf-8") as handle:
        return next(row for row in csv.DictReader(handle) if row["file"] == name)


def snapshot(folder: Path) -> dict:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and "lock" not in p.name}


def test_correct_writes_the_tags_into_every_field_and_marks_the_photo_reviewed(archive):
    _, out = archive
    copy = out / AURORA
    before = copy.read_bytes()
    result = run("correct", copy, "--add", "night", "--remove", "Aurora")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{copy}: +Night -Aurora -> Night"
    (meta,) = exiftool(copy)
    assert as_list(meta["XMP-dc:Subject"]) == ["Night"] and as_list(meta["IPTC:Keywords"]) == ["Night"]
    assert meta["IFD0:XPKeywords"] == "Night"
    assert np.array_equal(pixels(copy), pixels(ISS / AURORA)) and copy.read_bytes() != before
    assert record(out, AURORA).reviewed and record(out, AURORA).tags == ["Night"]
    row = csv_row(out, AURORA)
    assert row["tags"] == "Night" and row["reviewed"] == record(out, AURORA).reviewed
    assert not list((out / ".terc-tag" / "tmp").iterdir())  # written through a temporary, renamed into place


def test_keywords_of_the_original_are_never_removed(archive):
    _, out = archive
    result = run("correct", out / VOLCANO, "--remove", "Day", "--add", "Moon")
    assert result.exit_code == 0
    assert "kept Day: the original photo holds it" in result.output
    assert record(out, VOLCANO).tags == ["Volcano", "Day", "Moon"]
    (meta,) = exiftool(out / VOLCANO)
    assert "Day" in as_list(meta["XMP-dc:Subject"]) and "Moon" in as_list(meta["IPTC:Keywords"])
    assert meta["Photoshop:IPTCDigest"] == meta["File:CurrentIPTCDigest"]  # Adobe's tools still trust IPTC
    # Moon was added by the person: it can go again, and the photo's own keywords stay.
    assert run("correct", out / VOLCANO, "--remove", "Moon").exit_code == 0
    assert record(out, VOLCANO).tags == ["Volcano", "Day"]


def test_bad_requests_change_nothing(archive, tmp_path):
    incoming, out = archive
    before = snapshot(out)
    unknown = run("correct", out / AURORA, "--add", "Auroras")
    assert unknown.exit_code == 2 and "Auroras: not in the model's vocabulary" in unknown.output
    outside = run("correct", out / AURORA, incoming / AURORA, "--add", "Night")  # one good path, one outside
    assert outside.exit_code == 2 and "not inside a tagged OUTPUT folder" in outside.output
    missing = run("correct", out / "nowhere.jpg", "--add", "Night")
    assert missing.exit_code == 2 and "not a photo terc-tag tagged" in missing.output
    both = run("correct", out / AURORA, "--add", "Night", "--remove", "night")
    assert both.exit_code == 2 and "both added and removed" in both.output
    assert run("correct", out / AURORA).exit_code == 2  # nothing asked
    assert snapshot(out) == before


def test_no_later_run_changes_a_reviewed_photo(archive, session_module):
    incoming, out = archive
    correct(out, [AURORA], TERC_TAGS, add=["Stars"])
    reviewed, copy = record(out, AURORA), (out / AURORA).read_bytes()
    again = tag_folder(incoming, out, session_module, force=True)
    assert len(again.tagged) == 5 and again.reviewed_kept == 1
    lower = tag_folder(incoming, out, session_module, threshold=0.2)  # a new threshold: a new run key
    assert lower.reviewed_kept == 1
    after = record(out, AURORA)
    assert (out / AURORA).read_bytes() == copy and after.tags == reviewed.tags == ["Stars", "Aurora"]
    assert after.reviewed == reviewed.reviewed and after.run_key != reviewed.run_key  # its probabilities are new
    assert csv_row(out, AURORA)["reviewed"] == reviewed.reviewed


def test_a_new_version_of_a_reviewed_photo_gets_the_persons_tags(archive, session_module):
    incoming, out = archive
    correct(out, [AURORA], TERC_TAGS, add=["Night"], remove=["Aurora"])
    os.utime(incoming / AURORA, ns=(1, 1))  # a new download of the same name
    summary = tag_folder(incoming, out, session_module)
    assert summary.tagged == [AURORA]
    (meta,) = exiftool(out / AURORA)
    assert as_list(meta["XMP-dc:Subject"]) == ["Night"] and record(out, AURORA).reviewed


def test_a_correction_made_while_a_run_works_on_the_photo_is_kept(archive, session_module, monkeypatch):
    """The run has predicted the photo's batch when the person corrects it; the run must not undo it."""
    incoming, out = archive
    write = pipeline.write_batch

    def corrected_meanwhile(context, jobs, batch, probabilities, codes):
        if any(item.path.name == AURORA for item in batch):
            correct(out, [AURORA], TERC_TAGS, add=["Moon"], remove=["Aurora"])
        return write(context, jobs, batch, probabilities, codes)

    monkeypatch.setattr(pipeline, "write_batch", corrected_meanwhile)
    summary = tag_folder(incoming, out, session_module, force=True)
    assert summary.reviewed_kept == 1
    assert record(out, AURORA).tags == ["Moon"] and record(out, AURORA).reviewed
    (meta,) = exiftool(out / AURORA)
    assert as_list(meta["XMP-dc:Subject"]) == ["Moon"]


def test_a_correction_between_writing_a_copy_and_recording_it_is_kept(archive, session_module, monkeypatch):
    """The Ray engine writes copies on the workers and records them on the driver: a person may come between."""
    incoming, out = archive
    record_batch = pipeline.commit

    def corrected_meanwhile(state, outcomes, summary):
        if any(outcome.rel == AURORA for outcome in outcomes):
            correct(out, [AURORA], TERC_TAGS, add=["Moon"], remove=["Aurora"])
        return record_batch(state, outcomes, summary)

    monkeypatch.setattr(pipeline, "commit", corrected_meanwhile)
    summary = tag_folder(incoming, out, session_module, force=True)
    assert summary.reviewed_kept == 1 and AURORA not in summary.tagged
    assert record(out, AURORA).tags == ["Moon"] and record(out, AURORA).reviewed
    (meta,) = exiftool(out / AURORA)
    assert as_list(meta["XMP-dc:Subject"]) == ["Moon"]



def test_a_photo_handed_back_between_writing_and_recording_stays_handed_back(archive, session_module, monkeypatch):
    """A person hands a reviewed photo back to the model while the run writes it: the hand-back holds."""
    incoming, out = archive
    correct(out, [AURORA], TERC_TAGS, add=["Moon"], remove=["Aurora"])  # reviewed: the run keeps its tags
    record_batch = pipeline.commit

    def handed_back_meanwhile(state, outcomes, summary):
        if any(outcome.rel == AURORA for outcome in outcomes):
            correct(out, [AURORA], TERC_TAGS, reviewed=False)
        return record_batch(state, outcomes, summary)

    monkeypatch.setattr(pipeline, "commit", handed_back_meanwhile)
    tag_folder(incoming, out, session_module, force=True)
    handed = record(out, AURORA)
    assert not handed.reviewed and handed.run_key == ""  # 0.4's commit put the review and the run key back
    monkeypatch.undo()
    again = tag_folder(incoming, out, session_module)
    assert AURORA in again.tagged and not record(out, AURORA).reviewed

def test_a_correction_waits_for_the_batch_being_written(archive):
    _, out = archive
    finished = []
    with EditLock(out):  # what a run holds while it writes a batch and records it
        worker = threading.Thread(target=lambda: finished.append(correct(out, [AURORA], TERC_TAGS, add=["Moon"])))
        worker.start()
        time.sleep(0.5)
        assert not finished
    worker.join(10)
    assert finished and record(out, AURORA).tags == ["Aurora", "Moon"]


def test_an_output_tagged_before_0_4_takes_additions_and_removes_nothing(archive):
    _, out = archive
    downgrade_state(out, 3)  # 0.3 did not record which keywords it added
    result = run("correct", out / AURORA, "--add", "Night", "--remove", "Aurora")
    assert result.exit_code == 0 and "terc-tag 0.3 or older tagged it" in result.output
    assert record(out, AURORA).tags == ["Night", "Aurora"] and record(out, AURORA).reviewed
    again = run("correct", out / AURORA, "--remove", "Night")  # what the correction added it knows
    assert again.exit_code == 0 and record(out, AURORA).tags == ["Aurora"]


def test_accept_marks_reviewed_without_touching_the_copy(archive):
    _, out = archive
    copy = (out / AURORA).read_bytes()
    assert run("correct", out / AURORA, "--accept", "-q").output == ""
    assert record(out, AURORA).reviewed and (out / AURORA).read_bytes() == copy


def test_training_reads_the_corrected_tags(archive):
    _, out = archive
    correct(out, [AURORA], TERC_TAGS, add=["Night"], remove=["Aurora"])
    labels, errors = labels_from_metadata(out, [Path(AURORA), Path(VOLCANO)], TERC_TAGS)
    assert errors == [] and labels == {Path(AURORA): ["Night"], Path(VOLCANO): ["Volcano", "Day"]}


def test_a_predictions_csv_written_before_0_4_gains_its_reviewed_column(archive):
    _, out = archive
    table = out / "predictions.csv"
    rows = list(csv.reader(table.open(encoding="utf-8")))
    with table.open("w", encoding="utf-8", newline="") as handle:  # 0.3's columns
        csv.writer(handle, lineterminator="\n").writerows(row[:-1] for row in rows)
    correct(out, [AURORA], TERC_TAGS, add=["Night"])
    assert csv_row(out, AURORA)["reviewed"] == record(out, AURORA).reviewed
    assert csv_row(out, VOLCANO)["reviewed"] == "" and csv_row(out, VOLCANO)["Day"] == rows[3][8]  # kept as it was


def test_one_photo_named_twice_is_corrected_once(archive):
    """Spelled twice, the photo was edited twice from one stale record and forgot that terc-tag wrote Moon."""
    _, out = archive
    twice = run("correct", out / AURORA, f"{out}/./{AURORA}", "--add", "Moon")
    assert twice.exit_code == 0 and twice.output.count(AURORA) == 1
    assert "Moon" in record(out, AURORA).written
    again = correct(out, [AURORA, f"./{AURORA}", f"sub/../{AURORA}"], TERC_TAGS, remove=["Moon"])  # the API's way
    assert len(again) == 1 and again[0].removed == ["Moon"] and record(out, AURORA).tags == ["Aurora"]
    for outside in ("../x.jpg", "/etc/passwd", "."):
        with pytest.raises(CorrectionError, match="not a path inside OUTPUT"):
            correct(out, [outside], TERC_TAGS, add=["Moon"])


def test_unreview_hands_the_photo_back_to_the_model(archive, session_module):
    incoming, out = archive
    assert run("correct", out / AURORA, "--add", "Moon").exit_code == 0
    result = run("correct", out / AURORA, "--unreview")
    assert result.exit_code == 0 and "handed back to the model" in result.output
    assert record(out, AURORA).reviewed is None and csv_row(out, AURORA)["reviewed"] == ""
    summary = tag_folder(incoming, out, session_module)  # a plain run, no --force: it tags the photo again
    assert summary.tagged == [AURORA] and summary.reviewed_kept == 0
    assert record(out, AURORA).tags == ["Aurora"] and record(out, AURORA).run_key
    (meta,) = exiftool(out / AURORA)
    assert as_list(meta["XMP-dc:Subject"]) == ["Aurora"]
    mixed = run("correct", out / AURORA, "--unreview", "--add", "Moon")
    assert mixed.exit_code == 2 and "takes no --add" in mixed.output
