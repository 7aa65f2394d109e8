"""Cron safety: hostile inputs, a full disk, kill -9 mid-run, and a concurrent run."""

import csv
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import hostile
import numpy as np
from conftest import ISS
from PIL import Image

import tagger.decode
import tagger.tagging.pipeline
import tagger.tagging.predictions
import tagger.tagging.stages
from tagger.tagging.pipeline import tag_folder


def photo_names(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in (".jpg", ".png", ".tif") and ".terc-tag" not in p.parts}


def assert_consistent(src: Path, out: Path, tagged: set[str]) -> None:
    """Every photo of src is in out, complete; predictions.csv lists each tagged photo exactly once."""
    assert photo_names(out) == photo_names(src)
    assert not list(out.rglob(".terc-tmp-*"))
    for name in tagged:
        with Image.open(out / name) as copy, Image.open(src / name) as original:
            assert np.array_equal(np.asarray(copy), np.asarray(original)), name  # complete, same pixels
    rows = [r["file"] for r in csv.DictReader((out / "predictions.csv").open(encoding="utf-8"))]
    assert len(rows) == len(set(rows)) and set(rows) == tagged


def test_hostile_folder(tmp_path, session):
    src = hostile.build(tmp_path / "in")
    before = {name: (src / name).read_bytes() for name in photo_names(src)}
    summary = tag_folder(src, tmp_path / "out", session)
    failed = dict(summary.failed)
    assert set(failed) == set(hostile.BAD)
    for name, words in hostile.BAD.items():
        assert words in failed[name], (name, failed[name])
    valid = {p.name for p in ISS.glob("*.jpg")} | set(hostile.VALID_ODD)
    assert set(summary.tagged) == valid
    partly = dict(summary.partly_tagged)
    assert set(partly) == set(hostile.PARTLY)
    for name, words in hostile.PARTLY.items():
        assert words in partly[name], (name, partly[name])
    skipped = dict(summary.skipped)
    assert {"readme.txt", "sub/loop", "pipe.jpg"} <= set(skipped)
    assert skipped["pipe.jpg"] == "not a regular file"
    assert {name: (src / name).read_bytes() for name in photo_names(src)} == before  # originals untouched
    assert_consistent(src, tmp_path / "out", valid)


def test_odd_photos_are_read_as_a_person_sees_them(tmp_path, session):
    src = hostile.build(tmp_path / "in")
    tag_folder(src, tmp_path / "out", session)
    rows = {r["file"]: r for r in csv.DictReader((tmp_path / "out" / "predictions.csv").open(encoding="utf-8"))}
    upright = rows["iss038e040838.jpg"]
    for name in ("rotated-6.jpg", "rotated-8.jpg", "Über die Erde ☄.jpg"):
        assert rows[name]["tags"] == upright["tags"]  # the same aurora, however it is stored
        assert abs(float(rows[name]["Aurora"]) - float(upright["Aurora"])) < 0.05


def test_full_disk_fails_those_files_and_the_next_run_finishes(tmp_path, session, monkeypatch):
    src = shutil.copytree(ISS, tmp_path / "in")
    real_write, calls = tagger.tagging.stages.atomic_write, []

    def disk_fills_up(path, data, *args, **kwargs):
        calls.append(path)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data, *args, **kwargs)

    for stage in (tagger.tagging.stages, tagger.tagging.predictions):
        monkeypatch.setattr(stage, "atomic_write", disk_fills_up)
    summary = tag_folder(src, tmp_path / "out", session)
    assert len(summary.tagged) == 3 and summary.ended == "no space"  # the run stops at the first full write
    assert [name for name, _ in summary.failed] == ["predictions.csv"]  # photos not written are the stop's
    assert "OUTPUT is full" in dict(summary.failed)["predictions.csv"]
    monkeypatch.undo()
    again = tag_folder(src, tmp_path / "out", session)
    assert len(again.tagged) == 3 and again.unchanged == 3
    assert_consistent(src, tmp_path / "out", photo_names(src))


def test_a_photo_that_vanishes_mid_run(tmp_path, session, monkeypatch):
    src = shutil.copytree(ISS, tmp_path / "in")
    real_discover = tagger.tagging.pipeline.discover

    def discover_then_delete(root, *args):
        found = real_discover(root, *args)
        (root / found.photos[2]).unlink()
        return found

    monkeypatch.setattr(tagger.tagging.pipeline, "discover", discover_then_delete)
    summary = tag_folder(src, tmp_path / "out", session)
    assert len(summary.failed) == 1 and "No such file" in summary.failed[0][1]
    assert len(summary.tagged) == 5


def test_unreadable_file(tmp_path, session, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("secret.jpg", "open.jpg"):
        (src / name).write_bytes((ISS / "iss038e040838.jpg").read_bytes())
    if os.geteuid() == 0:  # root reads files whatever their mode: make the read itself fail
        real_read = tagger.decode.read_inside

        def read_inside(root, rel, *args):
            if Path(rel).name == "secret.jpg":
                raise PermissionError(errno.EACCES, "Permission denied", str(rel))
            return real_read(root, rel, *args)

        monkeypatch.setattr(tagger.decode, "read_inside", read_inside)
    else:
        (src / "secret.jpg").chmod(0)
    summary = tag_folder(src, tmp_path / "out", session)
    assert dict(summary.failed) == {"secret.jpg": "cannot read: Permission denied"}
    assert summary.tagged == ["open.jpg"]


def _start(src: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tagger", str(src), str(out), "--quiet", "--batch-size", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(out: Path, process: subprocess.Popen, at_least: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    db = out / ".terc-tag" / "state.sqlite"
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if db.exists():
            try:
                with sqlite3.connect(db) as connection:
                    if connection.execute("SELECT COUNT(*) FROM photos").fetchone()[0] >= at_least:
                        return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    raise AssertionError("the run made no progress")


def test_kill_9_mid_run_then_a_concurrent_run_then_complete(tmp_path):
    src = hostile.build(tmp_path / "in")
    many = src / "many"
    many.mkdir()
    for i in range(300):
        (many / f"iss099e{100000 + i * 1000}.jpg").write_bytes((ISS / "iss052e033191.jpg").read_bytes())
    out = tmp_path / "out"

    first = _start(src, out)
    _wait_for_rows(out, first, at_least=8)
    first.send_signal(signal.SIGKILL)
    first.wait()
    visible = photo_names(out) - {n for n in photo_names(out) if Path(n).name.startswith(".terc-tmp-")}
    assert visible  # the killed run got somewhere
    for name in visible:  # and whatever it left visible is complete
        if name in hostile.BAD:
            assert (out / name).read_bytes() == (src / name).read_bytes()
        else:
            with Image.open(out / name) as copy, Image.open(src / name) as original:
                assert np.array_equal(np.asarray(copy), np.asarray(original)), name

    second = _start(src, out)
    _wait_for_rows(out, second, at_least=1)  # the state exists already, so wait for the lock instead
    deadline = time.monotonic() + 60
    while not (out / ".terc-tag" / "lock").read_text().strip() == str(second.pid):
        assert time.monotonic() < deadline and second.poll() is None, second.poll() and second.communicate()
        time.sleep(0.05)
    started = time.monotonic()
    third = subprocess.run([sys.executable, "-m", "tagger", str(src), str(out)], capture_output=True, text=True)
    assert third.returncode == 3 and "another terc-tag run" in third.stderr
    assert time.monotonic() - started < 5  # refused before loading the model

    _, errors = second.communicate(timeout=300)
    with sqlite3.connect(out / ".terc-tag" / "state.sqlite") as connection:
        failed = {row[0] for row in connection.execute("SELECT path FROM photos WHERE status = 'failed'")}
    connection.close()
    assert failed == set(hostile.BAD)  # the hostile files fail, everything else is tagged
    assert all(line.startswith("terc-tag: failed: ") for line in errors.splitlines()), errors  # nothing else
    # Files that failed before the kill are known failures now: the second run does not report them again.
    reported = {line.split(": ")[2] for line in errors.splitlines()}
    assert reported and reported < set(hostile.BAD) and second.returncode == 1
    assert_consistent(src, out, photo_names(src) - set(hostile.BAD))
