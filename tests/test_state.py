import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from tagger.state import SCHEMA_VERSION, LockHeld, Record, RunLock, Seen, State


def test_second_lock_is_refused_with_the_holder(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):  # released on exit
        pass
    RunLock(tmp_path).check()  # free: no error


def test_check_creates_nothing(tmp_path):
    RunLock(tmp_path / "out").check()
    assert not (tmp_path / "out").exists()


def test_lock_of_a_killed_process_is_not_stale(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from tagger.state import RunLock\n"
        f"with RunLock(Path({str(tmp_path)!r})):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld):
        with RunLock(tmp_path):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path):
        pass


OLD_SCHEMA = ("CREATE TABLE photos (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, run_key TEXT,"
              " status TEXT, probabilities TEXT, tags TEXT, error TEXT)")  # terc-tag 0.1, user_version 0


def test_state_round_trip(tmp_path):
    state = State(tmp_path)
    assert state.migrated_from is None  # new, not upgraded
    state.save([Record("a.jpg", 10, 5, "model:0.5", "tagged", {"Day": 0.9}, ["Day"], None),
                Record("b.jpg", 10, 5, "model:0.5", "failed", None, [], "corrupt", "2026-11-23T10:00:00+00:00")])
    state.save([Record("a.jpg", 10, 5, "model:0.5", "tagged", {"Day": 0.8}, ["Day"], None)])
    assert [r.path for r in state.records()] == ["a.jpg", "b.jpg"]  # replaced, not duplicated
    assert state.index()["b.jpg"] == Seen(10, 5, "model:0.5", "failed", "corrupt", "2026-11-23T10:00:00+00:00", None)
    state.close()
    reader = State.reader(tmp_path)
    assert reader.get("a.jpg").probabilities == {"Day": 0.8}
    reader.close()
    assert State.reader(tmp_path / "nowhere") is None


def test_reader_creates_and_changes_nothing(tmp_path):
    State(tmp_path).close()
    folder = tmp_path / ".terc-tag"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    reader = State.reader(tmp_path)
    reader.index()
    reader.close()
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def _old_state(output) -> None:
    (output / ".terc-tag").mkdir(parents=True)
    with sqlite3.connect(output / ".terc-tag" / "state.sqlite") as db:
        db.execute(OLD_SCHEMA)
        db.execute("INSERT INTO photos VALUES ('a.jpg', 10, 5, 'm:0.5', 'tagged', '{\"Day\": 0.9}', '[\"Day\"]', NULL)")
        db.execute("INSERT INTO photos VALUES ('b.jpg', 10, 5, 'm:0.5', 'failed', NULL, '[]', 'corrupt')")
    db.close()


def test_a_state_written_by_0_1_is_read_then_upgraded_in_place(tmp_path):
    _old_state(tmp_path)
    reader = State.reader(tmp_path)  # before any upgrade: read as it is
    assert reader.index()["b.jpg"].first_failed is None and reader.get("a.jpg").tags == ["Day"]
    reader.close()
    state = State(tmp_path)
    assert state.migrated_from == 1
    assert state.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert state.get("a.jpg") == Record("a.jpg", 10, 5, "m:0.5", "tagged", {"Day": 0.9}, ["Day"], None, None)
    assert state.index()["b.jpg"].first_failed is None  # not a known failure: tried once more
    state.save([Record("b.jpg", 10, 5, "m:0.5", "failed", None, [], "corrupt", "2026-11-23T10:00:00+00:00")])
    state.close()
    again = State(tmp_path)
    assert again.migrated_from is None and again.get("b.jpg").first_failed == "2026-11-23T10:00:00+00:00"
    again.close()


def test_a_state_of_an_earlier_version_takes_names_that_are_not_utf8_without_a_migration(tmp_path):
    """Earlier versions stored every path as TEXT (only UTF-8 ones could be stored): kept as they are."""
    folder = tmp_path / ".terc-tag"
    folder.mkdir()
    db = sqlite3.connect(folder / "state.sqlite")
    db.execute("CREATE TABLE photos (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, run_key TEXT,"
               " status TEXT, probabilities TEXT, tags TEXT, error TEXT, first_failed TEXT, code BLOB,"
               " code_key TEXT, written TEXT, reviewed TEXT)")
    db.execute("INSERT INTO photos (path, size, mtime_ns, run_key, status, tags) VALUES"
               " ('caf\u00e9.jpg', 1, 2, 'm:0.5', 'tagged', '[\"Day\"]')")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.commit()
    db.close()
    latin1 = os.fsdecode(b"caf\xe9.jpg")  # the same word, named by a Windows zip: another file
    state = State(tmp_path)
    assert state.migrated_from is None and state.get("caf\u00e9.jpg").tags == ["Day"]
    state.save([Record(latin1, 3, 4, "m:0.5", "failed", None, [], f"cannot read {latin1}")])
    state.close()
    reader = State.reader(tmp_path)
    assert [r.path for r in reader.records()] == ["caf\u00e9.jpg", latin1]
    assert reader.get(latin1).error == f"cannot read {latin1}" and set(reader.index()) == {"caf\u00e9.jpg", latin1}
    reader.close()
