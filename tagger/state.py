"""What a previous run already did, and who is running now.

The state lives in ``OUTPUT/.terc-tag/`` beside the copies it describes:

* ``state.sqlite``: one row per photo: the input's size and mtime, the model
  id and threshold it was tagged with, its probabilities and outcome.  SQLite
  commits are atomic, so a ``kill -9`` loses at most the uncommitted batch,
  whose photos are simply redone.
* ``lock``: held with ``flock`` for the whole run.  The kernel drops the lock
  when the process dies, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tagger.discover import STATE_DIR_NAME


class LockHeld(Exception):
    pass


class RunLock:
    """An exclusive, non-blocking lock on an OUTPUT folder."""

    def __init__(self, output: Path):
        self.path = Path(output) / STATE_DIR_NAME / "lock"
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._take(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def check(self) -> None:
        """Raise LockHeld now if another run holds the lock; writes and creates nothing.

        A fast path for the command line, which calls it before loading the
        model: the run itself still takes the lock when it starts writing.
        """
        if self.path.exists():
            fd = os.open(self.path, os.O_RDONLY)
            self._take(fd)
            os.close(fd)

    def _take(self, fd: int) -> None:
        """flock ``fd`` without waiting; on failure close it and say who holds the lock."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LockHeld(f"another terc-tag run (pid {holder}) is writing to {self.path.parent.parent}") from None
            raise


@dataclass
class Record:
    path: str
    size: int
    mtime_ns: int
    run_key: str
    status: str  # "tagged" or "failed"
    probabilities: list[float] | None
    tags: list[str]
    error: str | None


class State:
    """The per-OUTPUT record of finished photos."""

    def __init__(self, output: Path):
        folder = Path(output) / STATE_DIR_NAME
        folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(folder / "state.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS photos (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
            " run_key TEXT, status TEXT, probabilities TEXT, tags TEXT, error TEXT)")

    @classmethod
    def existing(cls, output: Path) -> "State | None":
        """The state of an earlier run, or None; creates nothing."""
        return cls(output) if (Path(output) / STATE_DIR_NAME / "state.sqlite").is_file() else None

    def get(self, path: str) -> Record | None:
        row = self.db.execute("SELECT * FROM photos WHERE path = ?", (path,)).fetchone()
        return self._record(row) if row else None

    def is_done(self, path: str, size: int, mtime_ns: int, run_key: str) -> bool:
        record = self.get(path)
        return (record is not None and record.status == "tagged" and record.size == size
                and record.mtime_ns == mtime_ns and record.run_key == run_key)

    def save(self, records: list[Record]) -> None:
        """Store a batch in one transaction: all of it lands, or none of it."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO photos VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.path, r.size, r.mtime_ns, r.run_key, r.status,
                  json.dumps(r.probabilities) if r.probabilities is not None else None,
                  json.dumps(r.tags), r.error) for r in records])

    def records(self) -> list[Record]:
        return [self._record(row) for row in self.db.execute("SELECT * FROM photos ORDER BY path")]

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _record(row) -> Record:
        path, size, mtime_ns, run_key, status, probabilities, tags, error = row
        return Record(path, size, mtime_ns, run_key, status,
                      json.loads(probabilities) if probabilities else None, json.loads(tags or "[]"), error)
