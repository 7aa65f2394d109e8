"""Every ending of a `tag` run leaves its record: signals, a full disk, a refused start.

The real command line runs in a subprocess, as cron, `timeout` or systemd would run and stop it.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ISS, ROOT
from PIL import Image

from tagger.state import RunLock

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
#: Fills the disk after three photos written: the command line as a full disk (or quota) leaves it.  The
#: reserve given back then leaves room for predictions.csv.
FULL_AFTER_3 = """
import errno, os, sys
import tagger.outputs as outputs
real, written = outputs._write_then_rename, []
def full(folder, name, *args):
    written.append(name)
    if name.endswith(".jpg") and len(written) > 3:
        raise OSError(errno.{code}, os.strerror(errno.{code}))
    return real(folder, name, *args)
outputs._write_then_rename = full
from tagger.cli import main
sys.argv[0] = "terc-tag"
main()
"""


def command(*args, code: str | None = None) -> list[str]:
    start = [sys.executable, "-c", code] if code else [sys.executable, "-m", "tagger"]
    return [*start, *map(str, args)]


def photos(folder: Path, copies: int) -> Path:
    folder.mkdir()
    for n in range(copies):
        for photo in sorted(ISS.glob("*.jpg")):
            shutil.copy(photo, folder / f"{n:02d}-{photo.name}")
    return folder


def predictions(out: Path) -> list[str]:
    with (out / "predictions.csv").open(encoding="utf-8") as rows:
        return [row["file"] for row in csv.DictReader(rows)]


def assert_consistent(out: Path) -> None:
    """No temporary left, every copy complete, and predictions.csv lists exactly the photos recorded."""
    from tagger.state import State

    assert not list((out / ".terc-tag" / "tmp").glob("*"))
    for copy in out.glob("*.jpg"):
        with Image.open(copy) as image:
            image.load()  # a half-written JPEG would not load
    state = State.reader(out)
    recorded = sorted(r.path for r in state.records() if r.status == "tagged")
    state.close()
    assert sorted(predictions(out)) == recorded and recorded


def one_line(stderr: str, *words: str) -> None:
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert all(word in stderr for word in words), stderr


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_stops_the_run_and_leaves_its_record(tmp_path, name):
    incoming, out = photos(tmp_path / "incoming", 4), tmp_path / "tagged"
    log, summary = tmp_path / "cron.log", tmp_path / "summary.json"
    run = subprocess.Popen(command(incoming, out, "--quiet", "--backend", "tf", "--batch-size", "2", "--workers", "1",
                                   "--log-file", log, "--json-summary", summary),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.jpg")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(getattr(signal, name))
    sent = time.monotonic()
    stdout, stderr = run.communicate(timeout=60)
    assert time.monotonic() - sent < 10  # stopped within seconds
    code = 128 + getattr(signal, name).value
    assert run.returncode == code and stdout == ""
    one_line(stderr, f"stopped: {name} received", "next run goes on")
    assert log.read_text().splitlines()[0].endswith(f"stopped: {name} received (exit {code})")
    report = json.loads(summary.read_text())
    assert report["ended"] == name and report["exit_code"] == code and 0 < report["tagged"] < 24
    assert_consistent(out)
    if name == "SIGTERM":  # the next run completes everything
        again = subprocess.run(command(incoming, out, "--quiet", "--backend", "tf"), capture_output=True, env=ENV)
        assert again.returncode == 0 and again.stderr == b""
        assert len(predictions(out)) == 24
        assert_consistent(out)


@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT"])
def test_a_full_disk_stops_the_run_names_the_path_and_the_next_run_completes(tmp_path, code):
    incoming, out, log = photos(tmp_path / "incoming", 1), tmp_path / "tagged", tmp_path / "cron.log"
    summary = tmp_path / "summary.json"
    full = subprocess.run(command(incoming, out, "--quiet", "--backend", "tf", "--log-file", log, "--json-summary",
                                  summary, code=FULL_AFTER_3.format(code=code)),
                          capture_output=True, text=True, env=ENV)
    reason = "no space left on device" if code == "ENOSPC" else "disk quota exceeded"
    assert full.returncode == 4
    one_line(full.stderr, f"{reason} for", str(out))
    assert "(exit 4)" in log.read_text().splitlines()[0] and reason in log.read_text()
    report = json.loads(summary.read_text())
    assert report["ended"] == "no space" and report["exit_code"] == 4 and report["tagged"] == 3
    assert_consistent(out)  # the three photos written before the disk filled are recorded and listed

    again = subprocess.run(command(incoming, out, "--quiet", "--backend", "tf"), capture_output=True, env=ENV)
    assert again.returncode == 0 and again.stderr == b""
    assert len(predictions(out)) == 6
    assert_consistent(out)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MB tmpfs, where the test may mount one (root, and a kernel that lets it)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (the injected full disk covers this)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_output_on_a_tiny_tmpfs_then_grown(tmp_path, tiny_tmpfs):
    incoming, out, log = photos(tmp_path / "incoming", 5), tiny_tmpfs / "tagged", tmp_path / "cron.log"
    full = subprocess.run(command(incoming, out, "--quiet", "--backend", "tf", "--log-file", log),
                          capture_output=True, text=True, env=ENV)
    assert full.returncode == 4
    one_line(full.stderr, "no space left on device for", str(out))
    assert "(exit 4)" in log.read_text()
    assert_consistent(out)
    subprocess.run(["mount", "-o", "remount,size=20m", str(tiny_tmpfs)], check=True)
    again = subprocess.run(command(incoming, out, "--quiet", "--backend", "tf"), capture_output=True, env=ENV)
    assert again.returncode == 0 and again.stderr == b""
    assert len(predictions(out)) == 30
    assert_consistent(out)


@pytest.mark.parametrize("case, code, words", [
    ("output inside input", 2, "inside INPUT"),
    ("input missing", 2, "does not exist"),
    ("usage error", 2, "not between 0 and 1"),
    ("lock held", 3, "another terc-tag run"),
    ("state damaged", 2, "cannot be used"),
])
def test_a_refused_start_says_why_in_one_line_and_is_logged(tmp_path, case, code, words):
    incoming, out = photos(tmp_path / "incoming", 1), tmp_path / "tagged"
    log, summary = tmp_path / "cron.log", tmp_path / "summary.json"
    args = {"output inside input": [incoming, incoming / "tagged"], "input missing": [tmp_path / "nowhere", out],
            "usage error": [incoming, out, "--threshold", "1.5"], "lock held": [incoming, out],
            "state damaged": [incoming, out]}[case]
    if case == "state damaged":  # not SQLite at all: a traceback and exit 1 in 0.4
        (out / ".terc-tag").mkdir(parents=True)
        (out / ".terc-tag" / "state.sqlite").write_bytes(b"not a database" * 100)
    with RunLock(out) if case == "lock held" else open(os.devnull):
        result = subprocess.run(command(*args, "--quiet", "--log-file", log, "--json-summary", summary),
                                capture_output=True, text=True, env=ENV)
    assert result.returncode == code and result.stdout == ""
    one_line(result.stderr, "terc-tag: error:", words)
    line = log.read_text()
    assert len(line.splitlines()) == 1 and f"refused (exit {code})" in line and words in line
    report = json.loads(summary.read_text())
    assert report["ended"] == "refused" and report["exit_code"] == code and words in report["error"]


def test_a_followed_link_to_a_fifo_is_named_for_what_it_is(tmp_path):
    from tagger.discover import discover

    os.mkfifo(tmp_path / "pipe")
    os.symlink("pipe", tmp_path / "pipe.jpg")
    os.symlink("nowhere", tmp_path / "broken.jpg")
    skipped = dict((str(p), r) for p, r in discover(tmp_path, follow_symlinks=True).skipped)
    assert skipped["pipe.jpg"] == "link to a FIFO (named pipe), not a regular file"
    assert skipped["broken.jpg"] == "broken link"
