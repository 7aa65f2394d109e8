"""Cron runs: nothing new means nothing done, and a known broken file is reported once."""

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEFAULT_MODEL, ISS, downgrade_state

from tagger.bundle import Bundle
from tagger.cli import main
from tagger.sessions import load_session
from tagger.tagging.pipeline import tag_folder

GOOD = ISS / "iss052e033191.jpg"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every file and folder under ``folder`` (state included) with its inode, size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
            for p in [folder, *folder.rglob("*")]}


@pytest.fixture
def incoming(tmp_path) -> Path:
    folder = tmp_path / "incoming"
    (folder / "day").mkdir(parents=True)
    for path in sorted(ISS.glob("*.jpg"))[:3]:
        shutil.copy(path, folder / "day" / path.name)
    return folder


def test_nothing_new_loads_no_model_writes_nothing_and_says_nothing(incoming, tmp_path, monkeypatch):
    out, log = tmp_path / "tagged", tmp_path / "cron.log"
    first = run(incoming, out, "--quiet", "--backend", "tf")
    assert first.exit_code == 0 and first.output == ""
    before = snapshot(out)

    monkeypatch.setattr("tagger.sessions.load_session", lambda bundle: pytest.fail("the model was loaded"))
    again = run(incoming, out, "--quiet", "--backend", "tf", "--log-file", log)
    assert again.exit_code == 0 and again.output == ""
    assert snapshot(out) == before  # not one file or folder of OUTPUT touched, the state's included
    assert len(log.read_text().splitlines()) == 1 and "0 tagged, 3 already done" in log.read_text()

    loud = run(incoming, out, "--backend", "tf")  # without --quiet: the summary, still nothing written
    assert loud.exit_code == 0 and "0 photos tagged" in loud.output and "3 already done" in loud.output
    assert snapshot(out) == before


def test_an_output_tagged_at_0_5_before_it_was_the_models_default_is_not_tagged_again(incoming, tmp_path,
                                                                                      monkeypatch):
    """0.3 and older keyed runs by the threshold given (0.5 by default); 0.5 now comes from the model card."""
    out = tmp_path / "tagged"
    assert run(incoming, out, "--quiet", "--backend", "tf", "--threshold", "0.5").exit_code == 0
    before = snapshot(out)
    monkeypatch.setattr("tagger.sessions.load_session", lambda bundle: pytest.fail("the model was loaded"))
    assert run(incoming, out, "--quiet", "--backend", "tf").exit_code == 0
    assert snapshot(out) == before


def test_a_corrupt_file_is_reported_once_then_tagged_when_it_is_replaced(incoming, tmp_path, monkeypatch):
    out, summary_file = tmp_path / "tagged", tmp_path / "summary.json"
    (incoming / "day" / "partial.jpg").write_bytes(GOOD.read_bytes()[:5000])  # a download cut short

    first = run(incoming, out, "--quiet", "--backend", "tf")
    assert first.exit_code == 1
    assert len(first.stderr.splitlines()) == 1
    assert first.stderr.startswith("terc-tag: failed: day/partial.jpg: corrupt image data")
    copied = (out / "day" / "partial.jpg").stat()

    before = snapshot(out)
    with monkeypatch.context() as patch:
        patch.setattr("tagger.sessions.load_session", lambda bundle: pytest.fail("the model was loaded"))
        second = run(incoming, out, "--quiet", "--backend", "tf")
        assert second.exit_code == 0 and second.output == "" and second.stderr == ""
        assert snapshot(out) == before  # not retried, not copied again, nothing rewritten

        loud = run(incoming, out, "--backend", "tf", "--json-summary", summary_file)
    assert loud.exit_code == 0
    assert "1 known failures" in loud.output and "day/partial.jpg: corrupt image data" in loud.output
    known = json.loads(summary_file.read_text())["known_failures"]
    assert [k["file"] for k in known] == ["day/partial.jpg"] and "corrupt" in known[0]["reason"]
    assert known[0]["first_failed"].endswith("+00:00")
    assert (out / "day" / "partial.jpg").stat().st_ino == copied.st_ino

    (incoming / "day" / "partial.jpg").write_bytes(GOOD.read_bytes())  # the download completes
    third = run(incoming, out, "--quiet", "--backend", "tf")
    assert third.exit_code == 0 and third.output == ""
    assert (out / "day" / "partial.jpg").read_bytes() != GOOD.read_bytes()[:5000]
    assert "day/partial.jpg" in (out / "predictions.csv").read_text()


def test_retry_failed_retries_known_failures_and_keeps_when_they_first_failed(incoming, tmp_path):
    out, summary_file = tmp_path / "tagged", tmp_path / "summary.json"
    (incoming / "notes.jpg").write_text("a text file named .jpg")
    assert run(incoming, out, "--quiet", "--backend", "tf", "--json-summary", summary_file).exit_code == 1
    run(incoming, out, "--backend", "tf", "--json-summary", summary_file)
    first_failed = json.loads(summary_file.read_text())["known_failures"][0]["first_failed"]

    retried = run(incoming, out, "--quiet", "--backend", "tf", "--retry-failed")
    assert retried.exit_code == 1 and "notes.jpg: not a readable image" in retried.stderr
    run(incoming, out, "--backend", "tf", "--json-summary", summary_file)
    assert json.loads(summary_file.read_text())["known_failures"][0]["first_failed"] == first_failed


def test_force_redoes_everything_known_failures_included(incoming, tmp_path):
    out = tmp_path / "tagged"
    (incoming / "notes.jpg").write_text("a text file named .jpg")
    session = load_session(Bundle(DEFAULT_MODEL))
    tag_folder(incoming, out, session)
    again = tag_folder(incoming, out, session, force=True)
    assert len(again.tagged) == 3 and [f for f, _ in again.failed] == ["notes.jpg"]
    assert again.unchanged == 0 and again.known_failures == []


def test_a_missing_predictions_csv_is_written_again_without_the_model(incoming, tmp_path, session, monkeypatch):
    out = tmp_path / "tagged"
    tag_folder(incoming, out, session)
    rows = (out / "predictions.csv").read_text()
    (out / "predictions.csv").unlink()  # e.g. the disk was full when the last run wrote it
    monkeypatch.setattr("tagger.sessions.load_session", lambda bundle: pytest.fail("the model was loaded"))
    summary = tag_folder(incoming, out, Bundle(DEFAULT_MODEL))
    assert summary.unchanged == 3 and (out / "predictions.csv").read_text() == rows


def test_temporaries_live_in_one_folder_cleared_by_the_next_run_with_work(incoming, tmp_path, session):
    out = tmp_path / "tagged"
    tag_folder(incoming, out, session)
    leftover = out / ".terc-tag" / "tmp" / ".terc-tmp-99999-0"  # what a kill -9 mid-write leaves
    leftover.write_bytes(b"half a photo")
    tag_folder(incoming, out, session)
    assert leftover.exists()  # a run with nothing to do writes (and deletes) nothing
    shutil.copy(GOOD, incoming / "new.jpg")
    tag_folder(incoming, out, session)
    assert not leftover.exists()
    assert not list(out.rglob(".terc-tmp-*"))


def test_an_output_written_by_0_1_keeps_working(incoming, tmp_path, session, monkeypatch):
    """0.1's state had no first_failed and no schema version; it kept temporaries beside the photos, copies 644."""
    out = tmp_path / "tagged"
    (incoming / "notes.jpg").write_text("a text file named .jpg")
    tag_folder(incoming, out, session)
    downgrade_state(out, 0)  # back to 0.1's schema
    stale = out / "day" / ".terc-tmp-4242-iss038e040838.jpg"
    stale.write_bytes(b"half a photo")
    photo = sorted((incoming / "day").iterdir())[0]
    photo.chmod(0o600)
    (out / "day" / photo.name).chmod(0o644)

    loads = []
    monkeypatch.setattr("tagger.sessions.load_session", lambda bundle: loads.append(1) or load_session(bundle))
    summary = tag_folder(incoming, out, session)
    assert summary.unchanged == 3 and summary.tagged == []  # no photo re-tagged
    assert [f for f, _ in summary.failed] == ["notes.jpg"]  # 0.1's failure is tried once more
    assert not stale.exists() and (out / "day" / photo.name).stat().st_mode & 0o777 == 0o600
    again = tag_folder(incoming, out, session)
    assert again.failed == [] and [f for f, _, _ in again.known_failures] == ["notes.jpg"]
    assert len(loads) == 1  # the second run had nothing to do


def test_dry_run_writes_nothing_and_counts_known_failures(incoming, tmp_path, session):
    out = tmp_path / "tagged"
    (incoming / "notes.jpg").write_text("a text file named .jpg")
    tag_folder(incoming, out, session)
    shutil.copy(GOOD, incoming / "new.jpg")
    private = sorted((incoming / "day").iterdir())[0]
    private.chmod(0o600)  # its copy, 644, would be narrowed by a real run
    before = snapshot(out)
    modes = {p: p.stat().st_mode for p in out.rglob("*")}
    summary = tag_folder(incoming, out, session, dry_run=True)
    assert {p: p.stat().st_mode for p in out.rglob("*")} == modes
    assert summary.pending == 1 and summary.unchanged == 3 and len(summary.known_failures) == 1
    assert snapshot(out) == before
    assert os.path.exists(out / "predictions.csv")
