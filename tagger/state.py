"""What a previous run already did, and who is running now.

The state lives in ``OUTPUT/.terc-tag/`` beside the copies it describes:

* ``state.sqlite``: one row per photo: the input's size and mtime, the model
  id and threshold it was tagged with, its probabilities and outcome (and,
  for a photo that failed, when it first did), and its similarity code with
  the identity of the code map that made it.  SQLite commits are atomic,
  so a ``kill -9`` loses at most the uncommitted batch, whose photos are
  simply redone.  Its schema version is SQLite's ``user_version``; an older
  state is upgraded in place by the next run that writes.
* ``lock``: held with ``flock`` for the whole run.  The kernel drops the lock
  when the process dies, so a killed run never leaves a stale lock behind.

A photo's path is stored as TEXT when it is UTF-8, as earlier versions
stored every path, and otherwise as a BLOB of its bytes: any name Linux allows is a key,
one name is one key, and a state written by an earlier version needs no
change.  Python code sees every path as ``os.fsdecode`` gives it.
* ``edit.lock``: held briefly by whoever changes copies and their rows (a
  run's batch, one correction), so that a correction made during a run is
  neither lost nor undone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, overload

from tagger.discover import STATE_DIR_NAME
from tagger.errors import EXIT_LOCKED, TercTagError, no_space


class StateError(TercTagError, sqlite3.DatabaseError):
    """OUTPUT's state cannot be opened: a damaged file, or one SQLite cannot lock (some network disks)."""


class LockHeld(TercTagError):
    """Another run (or correction) holds OUTPUT's lock; the message says whose."""

    exit_code = EXIT_LOCKED


class _FolderLock:
    """A ``flock`` on a file in OUTPUT's state folder; closing it, or the process dying, releases it."""

    FILE = ""

    def __init__(self, output: Path):
        self.path = Path(output) / STATE_DIR_NAME / self.FILE
        self._fd: int | None = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


class RunLock(_FolderLock):
    """An exclusive, non-blocking lock on an OUTPUT folder, held for a whole run; the file holds the run's pid."""

    FILE = "lock"

    def __enter__(self) -> RunLock:
        fd = self._open()
        self._take(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

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


class EditLock(_FolderLock):
    """Held (waiting for it if need be) while a batch of copies and their rows change.

    A run checks under it which photos a person reviewed meanwhile, and
    ``correct`` changes a copy under it, so neither undoes the other.
    """

    FILE = "edit.lock"

    def __enter__(self) -> EditLock:
        self._fd = self._open()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self


@dataclass
class Record:
    path: str
    size: int
    mtime_ns: int
    run_key: str
    status: str  # "tagged", or "failed": the photo itself could not be read, decoded or tagged
    probabilities: dict[str, float] | None
    tags: list[str]
    error: str | None
    first_failed: str | None = None  # when this version of the file (same size and mtime) first failed
    code: bytes | None = None  # the similarity code: packed little-endian uint64 words
    code_key: str | None = None  # the bundle's codes_id
    written: list[str] | None = None  # the keywords terc-tag added to the copy (None: tagged before 0.4)
    reviewed: str | None = None  # when a person corrected or accepted its tags; then no run changes them


class CodeUpdate(NamedTuple):
    """A new similarity code for a photo whose tags stay as they are (``tag --add-codes``)."""

    path: str
    code: bytes
    code_key: str


class Seen(NamedTuple):
    """What the planning of a run needs to know of a photo: a Record without its probabilities."""

    size: int
    mtime_ns: int
    run_key: str
    status: str
    error: str | None
    first_failed: str | None
    code_key: str | None


#: 1: the photos table.  2 (terc-tag 0.2): first_failed, so an unchanged broken file is a known failure.
#: 3 (0.3): code and code_key, the similarity code of each photo.
#: 4 (0.4): written and reviewed, so that a person's corrections stay.
SCHEMA_VERSION = 4
_COLUMNS = ("path", "size", "mtime_ns", "run_key", "status", "probabilities", "tags", "error", "first_failed",
            "code", "code_key", "written", "reviewed")
_ADDED_IN = {2: ("first_failed TEXT",), 3: ("code BLOB", "code_key TEXT"), 4: ("written TEXT", "reviewed TEXT")}


def state_file(output: str | os.PathLike) -> Path:
    """Where OUTPUT's state lives: ``OUTPUT/.terc-tag/state.sqlite``."""
    return Path(output) / STATE_DIR_NAME / "state.sqlite"


@contextmanager
def _opening(path: Path) -> Iterator[None]:
    """SQLite's errors while a state is opened, as one :class:`StateError` naming the file.

    A full disk stays SQLite's own error: the run reports it as no space left (exit 4), not as a bad state.
    """
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if no_space(exc):
            raise
        raise StateError(f"OUTPUT's state {path} cannot be used: {exc}") from exc


class State:
    """The per-OUTPUT record of finished photos.

    ``State(output)`` opens it for writing (a run holding the lock),
    creating or upgrading it; ``migrated_from`` then says from which schema
    version, or is None.  ``State.reader(output)`` only reads, and creates no
    file at all, so a run that finds nothing to do leaves OUTPUT untouched.
    """

    def __init__(self, output: Path, *, _db: sqlite3.Connection | None = None):
        self.output = Path(output)
        self.migrated_from: int | None = None
        if _db is not None:
            self.db = _db
            return
        path = state_file(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _opening(path):
            # A run's writer thread commits its batches; calls on the connection never overlap.
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._migrate()

    @classmethod
    def reader(cls, output: Path) -> State | None:
        """The state of earlier runs, read-only, or None if there is none.

        When its last writer closed it cleanly (no ``-wal`` file), it is
        opened ``immutable``: SQLite then creates and changes no file at
        all, so a run with nothing to do leaves OUTPUT untouched.  Otherwise
        (a run in progress, or killed) the write-ahead log holds recent
        commits, and a plain read-only connection reads them.
        """
        path = state_file(output)
        if not path.is_file():
            return None
        mode = "ro" if path.with_name(path.name + "-wal").exists() else "ro&immutable=1"
        with _opening(path):
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
            db.execute("SELECT count(*) FROM sqlite_master")  # a damaged file says so here, not at the first query
        db.row_factory = sqlite3.Row
        return cls(output, _db=db)

    @classmethod
    @contextmanager
    def reading(cls, output: Path) -> Iterator[State | None]:
        """:meth:`reader` for a ``with`` block, closed at its end."""
        state = cls.reader(output)
        try:
            yield state
        finally:
            if state is not None:
                state.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        has_table = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'photos'").fetchone()
        if has_table and version < SCHEMA_VERSION:
            self.migrated_from = max(version, 1)  # terc-tag 0.1 left user_version at 0
        with self.db:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS photos (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
                " run_key TEXT, status TEXT, probabilities TEXT, tags TEXT, error TEXT, first_failed TEXT,"
                " code BLOB, code_key TEXT, written TEXT, reviewed TEXT)")
            # From 1: 0.1 also stored OUTPUT's own write failures as "failed"; without first_failed they are
            # not known failures, so each is tried once more and then recorded as it really is.
            # From 2: photos tagged before have no code; `tag --add-codes` computes them.
            # From 3: photos tagged before do not say which keywords terc-tag added; `correct` removes none.
            for version in range(self.migrated_from or SCHEMA_VERSION, SCHEMA_VERSION):
                for column in _ADDED_IN[version + 1]:
                    self.db.execute(f"ALTER TABLE photos ADD COLUMN {column}")
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def get(self, path: str) -> Record | None:
        row = self.db.execute("SELECT * FROM photos WHERE path = ?", (_stored(path),)).fetchone()
        return self._record(row) if row else None

    def index(self) -> dict[str, Seen]:
        """Every photo's :class:`Seen`, in one query (no probabilities parsed)."""
        if not self._columns():
            return {}  # created, but its first batch never committed
        rows = self.db.execute("SELECT * FROM photos")
        return {_read(row["path"]): Seen(row["size"], row["mtime_ns"], row["run_key"], row["status"], row["error"],
                                  _get(row, "first_failed"), _get(row, "code_key")) for row in rows}

    def save(self, records: list[Record]) -> None:
        """Store a batch in one transaction: all of it lands, or none of it."""
        with self.db:
            self.db.executemany(
                f"INSERT OR REPLACE INTO photos VALUES ({', '.join('?' * len(_COLUMNS))})",
                [(_stored(r.path), r.size, r.mtime_ns, r.run_key, r.status,
                  json.dumps(r.probabilities) if r.probabilities is not None else None,
                  json.dumps(r.tags), _stored(r.error), r.first_failed, r.code, r.code_key,
                  json.dumps(r.written) if r.written is not None else None, r.reviewed) for r in records])

    def save_codes(self, updates: list[CodeUpdate]) -> None:
        """Store new codes for photos whose tags stay as they are, in one transaction."""
        with self.db:
            self.db.executemany("UPDATE photos SET code = ?, code_key = ? WHERE path = ?",
                                [(u.code, u.code_key, _stored(u.path)) for u in updates])

    def code_keys(self) -> dict[str | None, int]:
        """How many tagged photos carry a code of each code map (None: no code)."""
        columns = self._columns()
        if not columns:  # created, but its first batch never committed
            return {}
        if "code_key" not in columns:
            return {None: self.db.execute("SELECT count(*) FROM photos WHERE status = 'tagged'").fetchone()[0]}
        rows = self.db.execute("SELECT code_key, count(*) FROM photos WHERE status = 'tagged' GROUP BY code_key")
        return {key: count for key, count in rows}

    def codes(self, code_key: str) -> tuple[list[str], list[list[str]], list[bytes]]:
        """Paths, tags and codes of the tagged photos coded by ``code_key``, in path order."""
        rows = self.db.execute("SELECT path, tags, code FROM photos WHERE status = 'tagged' AND code_key = ?"
                               " ORDER BY path", (code_key,)).fetchall()
        return [_read(r[0]) for r in rows], [json.loads(r[1] or "[]") for r in rows], [r[2] for r in rows]

    def _columns(self) -> set[str]:
        return {row[1] for row in self.db.execute("PRAGMA table_info(photos)")}

    def records(self) -> list[Record]:
        return [self._record(row) for row in self.db.execute("SELECT * FROM photos ORDER BY path")]

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _record(row: sqlite3.Row) -> Record:
        probabilities, tags = row["probabilities"], row["tags"]
        return Record(_read(row["path"]), row["size"], row["mtime_ns"], row["run_key"], row["status"],
                      json.loads(probabilities) if probabilities else None, json.loads(tags or "[]"),
                      _read(row["error"]),
                      _get(row, "first_failed"), _get(row, "code"), _get(row, "code_key"),
                      _json(_get(row, "written")), _get(row, "reviewed"))


def _stored(text: str | None) -> str | bytes | None:
    """A path (or an error naming one) as SQLite can hold it: TEXT if it is UTF-8, else a BLOB of its bytes."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text) if all(ord(c) < 0xD800 or 0xDC80 <= ord(c) <= 0xDCFF or ord(c) > 0xDFFF
                                        for c in text) else text.encode("utf-8", "backslashreplace").decode()


@overload
def _read(value: str | bytes) -> str: ...


@overload
def _read(value: None) -> None: ...


def _read(value: str | bytes | None) -> str | None:
    """The path (or error) :func:`_stored` stored."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _json(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def _get(row: sqlite3.Row, column: str) -> Any:
    """A column that states written by older versions lack (read through State.reader, never migrated)."""
    return row[column] if column in row.keys() else None
