"""Untrusted input folders: nothing from outside INPUT reaches OUTPUT, and private photos stay private."""

import csv
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DEFAULT_MODEL, ISS

import tagger.tagging.pipeline
import tagger.tagging.predictions
from tagger.bundle import Bundle, BundleError
from tagger.cli import main
from tagger.discover import discover
from tagger.labels import read_labels_file
from tagger.tagging.pipeline import tag_folder

PHOTO = ISS / "iss038e040838.jpg"
SECRET = b"private key material, never to be published\n"


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def outside(tmp_path) -> Path:
    """Someone else's folder beside INPUT: a private file, a private photo, and a note."""
    folder = tmp_path / "someone-else"
    folder.mkdir()
    (folder / "secret.jpg").write_bytes(SECRET)
    (folder / "secret.jpg").chmod(0o600)
    (folder / "their-photo.jpg").write_bytes(PHOTO.read_bytes())
    (folder / "their-photo.jpg").chmod(0o600)
    (folder / "notes.txt").write_text("theirs")
    return folder


def published(out: Path) -> dict[str, bytes]:
    """Every file in OUTPUT but terc-tag's own state."""
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and ".terc-tag" not in p.parts}


def assert_nothing_from(outside: Path, out: Path) -> None:
    theirs = {p.read_bytes() for p in outside.iterdir()} | {Path("/etc/passwd").read_bytes()}
    for name, data in published(out).items():
        assert data not in theirs, name


def test_links_out_of_input_are_not_followed(tmp_path, session, outside):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "photo.jpg").write_bytes(PHOTO.read_bytes())
    os.symlink(outside / "secret.jpg", src / "evil.jpg")
    os.symlink("/etc/passwd", src / "passwd.jpg")
    os.symlink(outside, src / "theirs")
    summary = tag_folder(src, out, session)
    assert summary.tagged == ["photo.jpg"] and summary.failed == []
    skipped = dict(summary.skipped)
    for name in ("evil.jpg", "passwd.jpg", "theirs"):
        assert skipped[name].startswith("symbolic link, not followed"), name
    assert set(published(out)) == {"photo.jpg", "predictions.csv"}
    assert_nothing_from(outside, out)


def test_follow_symlinks_follows_links_inside_input_only(tmp_path, session, outside):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "album").mkdir(parents=True)
    (src / "album" / "photo.jpg").write_bytes(PHOTO.read_bytes())
    os.symlink("album/photo.jpg", src / "alias.jpg")
    os.symlink("album", src / "same-album")
    os.symlink(outside / "secret.jpg", src / "evil.jpg")
    os.symlink(outside / "their-photo.jpg", src / "their-photo.jpg")
    os.symlink("/etc/passwd", src / "passwd.jpg")
    os.symlink(outside, src / "theirs")
    summary = tag_folder(src, out, session, follow_symlinks=True)
    assert sorted(summary.tagged) == ["album/photo.jpg", "alias.jpg"]
    skipped = dict(summary.skipped)
    assert skipped["same-album"] == "folder link loops back to a folder already walked"
    assert skipped["evil.jpg"] == f"link to {outside.resolve() / 'secret.jpg'}, outside INPUT: refused"
    assert skipped["passwd.jpg"] == "link to /etc/passwd, outside INPUT: refused"
    assert "outside INPUT" in skipped["theirs"] and "outside INPUT" in skipped["their-photo.jpg"]
    assert_nothing_from(outside, out)


def _swap_after_walk(monkeypatch, swap) -> None:
    """Run ``swap(root, found)`` between the walk and the read, as an attacker racing the cron job would."""
    real_discover = tagger.tagging.pipeline.discover

    def discover_then_swap(root, follow_symlinks=False):
        found = real_discover(root, follow_symlinks)
        swap(Path(root), found)
        return found

    monkeypatch.setattr(tagger.tagging.pipeline, "discover", discover_then_swap)


@pytest.mark.parametrize("follow", [False, True])
def test_a_file_swapped_for_a_link_after_the_walk_is_refused(tmp_path, session, outside, monkeypatch, follow):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (src / name).write_bytes(PHOTO.read_bytes())

    def swap(root, found):
        (root / "b.jpg").unlink()
        os.symlink(outside / "their-photo.jpg", root / "b.jpg")

    _swap_after_walk(monkeypatch, swap)
    summary = tag_folder(src, out, session, follow_symlinks=follow)
    assert summary.tagged == ["a.jpg"]
    reason = dict(summary.failed)["b.jpg"]
    assert ("outside INPUT: refused" if follow else "symbolic link, not followed") in reason
    assert set(published(out)) == {"a.jpg", "predictions.csv"}
    assert_nothing_from(outside, out)


@pytest.mark.parametrize("to", ["outside", "inside"])
def test_a_folder_swapped_for_a_link_after_the_walk_is_refused(tmp_path, session, outside, monkeypatch, to):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "their-photo.jpg").write_bytes(PHOTO.read_bytes())

    def swap(root, found):
        (root / "sub").rename(root / "sub-moved")
        os.symlink(outside if to == "outside" else root / "sub-moved", root / "sub")

    _swap_after_walk(monkeypatch, swap)
    summary = tag_folder(src, out, session)
    assert summary.tagged == []
    reason = dict(summary.failed)["sub/their-photo.jpg"]
    assert ("outside INPUT: refused" if to == "outside" else "through a symbolic link: refused") in reason
    assert_nothing_from(outside, out)


def test_a_fifo_swapped_in_after_the_walk_neither_hangs_nor_is_copied(tmp_path, session, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "a.jpg").write_bytes(PHOTO.read_bytes())

    def swap(root, found):
        (root / "a.jpg").unlink()
        os.mkfifo(root / "a.jpg")

    _swap_after_walk(monkeypatch, swap)
    summary = tag_folder(src, out, session)
    assert dict(summary.failed) == {"a.jpg": "cannot read: not a regular file"}
    assert set(published(out)) == {"predictions.csv"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_permissions_never_widen(tmp_path, session, umask_022):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "private" / "deeper").mkdir(parents=True)
    (src / "private").chmod(0o700)
    (src / "shared").mkdir()
    (src / "shared").chmod(0o750)
    files = {"mine.jpg": 0o600, "everyone.jpg": 0o644, "private/deeper/p.jpg": 0o640, "shared/s.jpg": 0o604,
             "broken.jpg": 0o600}
    for name, bits in files.items():
        (src / name).write_bytes(PHOTO.read_bytes() if name != "broken.jpg" else b"not a photo")
        (src / name).chmod(bits)
    summary = tag_folder(src, out, session)
    assert len(summary.tagged) == 4 and [f for f, _ in summary.failed] == ["broken.jpg"]  # copied unchanged
    for name, bits in files.items():
        assert mode(out / name) == bits & ~0o022, name
    assert mode(out / "private") == 0o700 and mode(out / "private" / "deeper") == 0o755
    assert mode(out / "shared") == 0o750
    assert mode(out / "predictions.csv") == 0o644  # the process umask


def test_report_files_follow_the_umask(tmp_path, session):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "a.jpg").write_bytes(PHOTO.read_bytes())
    old = os.umask(0o077)
    try:
        tag_folder(src, out, session)
    finally:
        os.umask(old)
    for path in (out / "predictions.csv", out / ".terc-tag" / "state.sqlite", out, out / ".terc-tag"):
        assert mode(path) & 0o077 == 0, path


def test_a_copy_that_grants_more_than_its_original_is_narrowed(tmp_path, session, umask_022):
    """A copy written by 0.1 (always 644), or whose original was made private since: no re-tag needed."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "a.jpg").write_bytes(PHOTO.read_bytes())
    tag_folder(src, out, session)
    (src / "a.jpg").chmod(0o600)
    again = tag_folder(src, out, session)
    assert again.unchanged == 1 and again.tagged == []
    assert mode(out / "a.jpg") == 0o600


FORMULA_NAMES = ["=HYPERLINK(\"http-x\",\"y\").jpg", "+1.jpg", "-2+3.jpg", "@SUM(A1).jpg", "'quoted.jpg"]


def test_formula_file_names_are_written_as_text(tmp_path, session):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in FORMULA_NAMES:
        (src / name).write_bytes(PHOTO.read_bytes())
    tag_folder(src, out, session)
    review = tmp_path / "review.csv"
    tagger.tagging.predictions.write_review(review, out, {t: 0.5 for t in session.vocabulary}, 0.5)
    for table in (out / "predictions.csv", review):
        cells = [row[0] for row in csv.reader(table.open(encoding="utf-8"))][1:]
        assert cells and all(cell.startswith("'") for cell in cells), cells
    written = {row[0] for row in csv.reader((out / "predictions.csv").open(encoding="utf-8"))}
    assert "'=HYPERLINK(\"http-x\",\"y\").jpg" in written and "''quoted.jpg" in written


def test_labels_csv_reads_back_the_names_it_escaped(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in FORMULA_NAMES:
        (src / name).write_bytes(PHOTO.read_bytes())  # tagged Aurora by TERC
    table = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["labels", str(src), "--csv", str(table)])
    assert result.exit_code == 0, result.output
    labels, _ = read_labels_file(table)
    assert sorted(map(str, labels)) == sorted(FORMULA_NAMES)
    assert all("Aurora" in tags for tags in labels.values())


def _bundle_copy(tmp_path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_MODEL, bundle)
    return bundle


class _RunsCodeWhenUnpickled:
    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_bundle_with_pickled_weights_is_refused_without_running_them(tmp_path):
    bundle = _bundle_copy(tmp_path)
    _RunsCodeWhenUnpickled.marker = tmp_path / "code-ran"
    arrays = dict(np.load(bundle / "weights.npz"))
    arrays["tags/0"] = np.array([_RunsCodeWhenUnpickled()], dtype=object)
    np.savez(bundle / "weights.npz", **arrays)
    with pytest.raises(BundleError, match="not a valid weights file"):
        Bundle(bundle).weights()
    assert not _RunsCodeWhenUnpickled.marker.exists()


@pytest.mark.parametrize("damage", ["card-not-json", "card-without-vocabulary", "weights-truncated",
                                    "weights-not-a-zip", "weights-missing"])
def test_a_malformed_bundle_is_one_line_and_exit_2(tmp_path, damage):
    bundle = _bundle_copy(tmp_path)
    card, weights = bundle / "model.json", bundle / "weights.npz"
    if damage == "card-not-json":
        card.write_text("{ not json")
    elif damage == "card-without-vocabulary":
        card.write_text('{"input_size": 224, "backbone": {"feature_layer": "conv4_block6_out"}}')
    elif damage == "weights-truncated":
        weights.write_bytes(weights.read_bytes()[:100000])
    elif damage == "weights-not-a-zip":
        weights.write_bytes(b"\x80\x04K\x01.")  # a pickle
    else:
        weights.unlink()
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes(PHOTO.read_bytes())
    done = subprocess.run([sys.executable, "-m", "tagger", "tag", str(src), str(tmp_path / "out"), "--model",
                           str(bundle), "--backend", "tf"], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("terc-tag: error: "), done.stderr
    assert not (tmp_path / "out" / "a.jpg").exists()


def test_discover_lists_links_with_their_reason(tmp_path, outside):
    (tmp_path / "in").mkdir()
    os.symlink(outside / "secret.jpg", tmp_path / "in" / "evil.jpg")
    found = discover(tmp_path / "in")
    assert found.photos == [] and [str(p) for p, _ in found.skipped] == ["evil.jpg"]
