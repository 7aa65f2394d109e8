"""Any name Linux allows is a photo like any other, and no name forges a line of output.

The real command line runs in a subprocess, on one folder of hostile names, as cron would run it.
"""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from urllib.parse import quote

import pytest
from conftest import ISS, ROOT

from tagger.metadata import read_keywords
from tagger.names import shown, unshown

PHOTO = ISS / "iss038e040838.jpg"
OTHER = ISS / "iss040e092721.jpg"
#: As bytes: the way a Windows zip, a shell script or a hostile sender names files.
HOSTILE = [b"caf\xe9.jpg", b"line\nbreak.jpg", b"cr\rreturn.jpg", b"tab\there.jpg", b"\x1b[31mred.jpg",
           b"\"quoted\", 'comma'.jpg", b"-dash.jpg", b"\\back\\slash.jpg", b"x" * 251 + b".jpg"]
NAMES = [os.fsdecode(name) for name in HOSTILE]


def terc_tag(*args, cwd=None) -> subprocess.CompletedProcess:
    """The installed command line, in a subprocess, with bytes in and out."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tagger", *map(os.fsencode, args)], capture_output=True, env=env,
                          cwd=cwd, timeout=300)


def assert_no_forged_lines(text: bytes) -> None:
    """Output is UTF-8, holds no control character but the newline, and no raw hostile name."""
    decoded = text.decode("utf-8")
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", decoded), decoded
    for name in HOSTILE[:5]:
        assert name not in text


def test_a_name_is_shown_on_one_line_and_recovered_exactly():
    for name in NAMES + ["Über die Erde ☄.jpg", "a\\nb.jpg", "\u202egpj.exe", "\x85next.jpg"]:
        assert "\n" not in shown(name) and "\r" not in shown(name) and unshown(shown(name)) == name
        shown(name).encode("utf-8")
    assert shown(NAMES[0]) == "caf\\xe9.jpg" and shown(NAMES[1]) == "line\\nbreak.jpg"
    assert shown("Über die Erde ☄.jpg") == "Über die Erde ☄.jpg"  # readable names stay readable


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """The hostile folder, tagged once by the real command line."""
    root = tmp_path_factory.mktemp("hostile")
    incoming, out = root / "incoming", root / "tagged"
    incoming.mkdir()
    for name in HOSTILE:
        shutil.copy(PHOTO, os.path.join(os.fsencode(incoming), name))
    shutil.copy(OTHER, incoming / "plain.jpg")
    result = terc_tag(incoming, out, "--backend", "tf", "--log-file", root / "cron.log", "--json-summary",
                      root / "summary.json", "--review", root / "review.csv", "--review-margin", "0.5")
    return root, incoming, out, result


def test_every_hostile_name_is_tagged_under_its_own_bytes(tagged):
    root, incoming, out, result = tagged
    assert result.returncode == 0, result.stderr.decode()
    copies = set(os.listdir(os.fsencode(out))) - {b"predictions.csv", b".terc-tag"}
    assert copies == set(HOSTILE) | {b"plain.jpg"}
    summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    assert summary["tagged"] == len(HOSTILE) + 1 and summary["failed"] == [] and summary["ended"] == "finished"
    assert_no_forged_lines(result.stdout)
    assert_no_forged_lines(result.stderr)
    assert_no_forged_lines((root / "cron.log").read_bytes())
    assert len((root / "cron.log").read_text().splitlines()) == 1


@pytest.mark.parametrize("csv_name", ["tagged/predictions.csv", "review.csv"])
def test_csvs_have_one_row_per_photo_and_give_each_name_back(tagged, csv_name):
    root = tagged[0]
    text = (root / csv_name).read_bytes().decode("utf-8")  # valid UTF-8
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text)
    rows = list(csv.DictReader(io.StringIO(text)))
    files = {unshown(row["file"].removeprefix("'")) for row in rows}  # a leading - is escaped as text
    assert files == set(NAMES) | {"plain.jpg"}
    if csv_name.startswith("tagged"):
        assert len(rows) == len(NAMES) + 1
        pandas = pytest.importorskip("pandas")
        assert len(pandas.read_csv(root / csv_name)) == len(NAMES) + 1


def test_a_quiet_rerun_is_silent_and_writes_nothing(tagged):
    root, incoming, out, _ = tagged
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = terc_tag(incoming, out, "--backend", "tf", "--quiet")
    assert again.returncode == 0 and again.stdout == b"" and again.stderr == b""
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_correct_similar_and_labels_take_hostile_names(tagged, tmp_path):
    root, incoming, out, _ = tagged
    work = tmp_path / "copy"
    shutil.copytree(out, work)
    name = HOSTILE[1]  # line\nbreak.jpg
    photo = os.path.join(os.fsencode(work), name)
    fixed = terc_tag("correct", photo, "--add", "Volcano")
    assert fixed.returncode == 0, fixed.stderr.decode()
    assert_no_forged_lines(fixed.stdout)
    labels = terc_tag("labels", work)
    assert labels.returncode == 0 and "line\\nbreak.jpg\tVolcano;Aurora" in labels.stdout.decode() or \
        re.search(r"line\\nbreak\.jpg\t.*Volcano", labels.stdout.decode())
    assert len(labels.stdout.decode().splitlines()) == len(NAMES) + 1

    answer = tmp_path / "similar.json"
    similar = terc_tag("similar", work, os.path.join(os.fsencode(work), HOSTILE[0]), "--json", answer,
                       "--html", tmp_path / "similar.html", "-k", "3")
    assert similar.returncode == 0, similar.stderr.decode()
    assert_no_forged_lines(similar.stdout)
    found = json.loads(answer.read_text(encoding="utf-8"))["queries"][0]
    assert unshown(found["query"]).endswith(NAMES[0])
    assert {unshown(r["path"]) for r in found["results"]} <= set(NAMES) | {"plain.jpg"}
    assert found["results"][0]["distance"] == 0  # another copy of the same photo
    assert "caf\\xe9.jpg" in (tmp_path / "similar.html").read_text(encoding="utf-8")


def test_an_old_state_keeps_working_and_takes_hostile_names(tagged, tmp_path):
    """Earlier states hold every path as TEXT (they could hold only UTF-8 ones): read as they are."""
    import sqlite3

    from tagger.state import State

    root, incoming, out, _ = tagged
    work = tmp_path / "copy"
    shutil.copytree(out, work)
    db = sqlite3.connect(work / ".terc-tag" / "state.sqlite")
    kinds = dict(db.execute("SELECT typeof(path), count(*) FROM photos GROUP BY typeof(path)").fetchall())
    db.close()
    assert kinds == {"text": len(NAMES), "blob": 1}  # UTF-8 names as before; caf\xe9.jpg as its bytes
    state = State.reader(work)
    assert {r.path for r in state.records()} == set(NAMES) | {"plain.jpg"}
    assert state.get(NAMES[0]).status == "tagged"
    state.close()


def test_a_photo_under_a_path_longer_than_path_max_is_tagged_or_named(tmp_path):
    incoming, out = tmp_path / "incoming", tmp_path / "tagged"
    incoming.mkdir()
    fd = os.open(incoming, os.O_RDONLY)
    for _ in range(24):  # 24 folders of 220 bytes: a 5,300-byte path
        os.mkdir("d" * 220, dir_fd=fd)
        fd, parent = os.open("d" * 220, os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    with open(os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as photo:
        photo.write(PHOTO.read_bytes())
    os.close(fd)
    shutil.copy(PHOTO, incoming / "shallow.jpg")
    result = terc_tag(incoming, out, "--backend", "tf", "--quiet")
    assert result.returncode == 0 and result.stderr == b""
    fd = os.open(out, os.O_RDONLY)
    for _ in range(24):
        fd, parent = os.open("d" * 220, os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    with open(os.open("deep.jpg", os.O_RDONLY, dir_fd=fd), "rb") as copy:
        assert "Aurora" in read_keywords(copy.read())
    os.close(fd)
    rows = list(csv.DictReader((out / "predictions.csv").open(encoding="utf-8")))
    assert sorted(len(row["file"]) for row in rows) == [len("shallow.jpg"), 24 * 221 + len("deep.jpg")]
    again = terc_tag(incoming, out, "--backend", "tf", "--json-summary", tmp_path / "again.json")
    assert again.returncode == 0 and json.loads((tmp_path / "again.json").read_text())["unchanged"] == 2


def test_reviews_json_api_lists_and_corrects_hostile_names(tagged, tmp_path):
    """The review page's JSON carries each name as JSON escapes it, and takes it back as it was given."""
    from conftest import DEFAULT_MODEL

    from tagger.bundle import Bundle
    from tagger.review.app import TOKEN_HEADER, Review, create_app
    from tagger.state import State

    work = tmp_path / "copy"
    shutil.copytree(tagged[2], work)
    client = create_app(Review(work, Bundle(DEFAULT_MODEL)), "token").test_client()
    listed = client.get("/api/photos?token=token")
    assert listed.status_code == 200
    paths = {photo["path"] for photo in json.loads(listed.data)["photos"]}
    assert paths == set(NAMES) | {"plain.jpg"}
    for name in (NAMES[0], NAMES[1], NAMES[4]):
        answer = client.post("/api/correct", json={"paths": [name], "add": ["Night"]},
                             headers={TOKEN_HEADER: "token"})
        assert answer.status_code == 200, answer.data
    state = State.reader(work)
    assert all(state.get(name).reviewed for name in (NAMES[0], NAMES[1], NAMES[4]))
    state.close()
    # The page's URLs carry each photo's shown name (a lone surrogate cannot be put in a URL).
    for photo in json.loads(listed.data)["photos"]:
        assert photo["name"] == shown(photo["path"])
        thumbnail = client.get("/thumb/" + quote(photo["name"]) + "?token=token")
        assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/jpeg", photo["name"]


def test_a_failed_file_named_like_a_log_line_forges_no_line(tmp_path):
    incoming, out, log = tmp_path / "incoming", tmp_path / "tagged", tmp_path / "cron.log"
    incoming.mkdir()
    shutil.copy(PHOTO, incoming / "good.jpg")
    forged = b"x.jpg: ok\n2026-01-01T00:00:00 failed \x1b[2Kother.jpg: forged.jpg"
    with open(os.path.join(os.fsencode(incoming), forged), "wb") as broken:
        broken.write(b"not a photo")
    result = terc_tag(incoming, out, "--backend", "tf", "--quiet", "--log-file", log)
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr.count(b"\n") == 1
    assert b"x.jpg: ok\\n2026-01-01T00:00:00 failed \\x1b[2Kother.jpg" in result.stderr
    assert len(log.read_bytes().splitlines()) == 2  # the run's line and one failed file
    for text in (result.stderr, log.read_bytes()):
        assert forged not in text and b"\x1b" not in text
