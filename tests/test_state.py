import os
import signal
import subprocess
import sys
import time

import pytest

from tagger.state import LockHeld, Record, RunLock, State


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


def test_state_round_trip_and_done_rules(tmp_path):
    state = State(tmp_path)
    state.save([Record("a.jpg", 10, 5, "model:0.5", "tagged", {"Day": 0.9}, ["Day"], None),
                Record("b.jpg", 10, 5, "model:0.5", "failed", None, [], "corrupt")])
    assert state.is_done("a.jpg", 10, 5, "model:0.5")
    assert not state.is_done("a.jpg", 11, 5, "model:0.5")   # size changed
    assert not state.is_done("a.jpg", 10, 6, "model:0.5")   # mtime changed
    assert not state.is_done("a.jpg", 10, 5, "other:0.5")   # model changed
    assert not state.is_done("b.jpg", 10, 5, "model:0.5")   # failures are retried
    state.save([Record("a.jpg", 10, 5, "model:0.5", "tagged", {"Day": 0.8}, ["Day"], None)])
    assert [r.path for r in state.records()] == ["a.jpg", "b.jpg"]  # replaced, not duplicated
    state.close()
    assert State.existing(tmp_path).get("a.jpg").probabilities == {"Day": 0.8}
    assert State.existing(tmp_path / "nowhere") is None
