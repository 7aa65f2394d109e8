"""Stage 4b: put files into OUTPUT so that no half-written file is ever visible, and none says more than it should.

Every file is written to a temporary file, flushed to disk with ``fsync``,
then renamed over its final name (atomic on POSIX).  OUTPUT's temporaries
live in ``OUTPUT/.terc-tag/tmp/``, never among the published photos, so
clearing a killed run's leftovers is one small folder to list, however large
the archive.

OUTPUT is what gets published, so nothing in it grants more than its source:
a copy gets at most its original's permission bits, a folder at most its
INPUT folder's (both less the process umask), and a CSV cell that a
spreadsheet would run as a formula is written as text.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

from tagger.discover import STATE_DIR_NAME

TEMP_PREFIX = ".terc-tmp-"
_serial = itertools.count()


def temp_folder(output: Path) -> Path:
    return Path(output) / STATE_DIR_NAME / "tmp"


def atomic_write(path: Path, data: bytes, mode: int = 0o666, temp_dir: Path | None = None) -> None:
    """Write ``data`` to ``path`` atomically, as a new file of ``mode`` less the umask.

    The temporary file goes in ``temp_dir`` (same filesystem as ``path``), or
    beside ``path``; a mount point inside OUTPUT falls back to beside.
    Folders are opened one at a time where ``path`` is longer than PATH_MAX.
    """
    folder = open_dir(Path(path).parent)
    try:
        temp = open_dir(temp_dir) if temp_dir is not None else None
        try:
            _write_then_rename(folder, Path(path).name, data, mode, folder if temp is None else temp)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _write_then_rename(folder, Path(path).name, data, mode, folder)
        finally:
            if temp is not None:
                os.close(temp)
        os.fsync(folder)
    finally:
        os.close(folder)


def _write_then_rename(folder: int, name: str, data: bytes, mode: int, temp_folder_fd: int) -> None:
    temp = f"{TEMP_PREFIX}{os.getpid()}-{next(_serial)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode, dir_fd=temp_folder_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=temp_folder_fd, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=temp_folder_fd)
        raise


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)


def open_dir(path: Path) -> int:
    """A descriptor of the folder ``path``, created if missing; one folder at a time if ``path`` is too long."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return os.open(path, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
    fd = os.open(path.anchor or ".", _DIR_FLAGS)
    for part in path.relative_to(path.anchor).parts if path.anchor else path.parts:
        fd = _child(fd, part, 0o777)
    return fd


def _child(fd: int, name: str, mode: int) -> int:
    """The folder ``name`` in the folder ``fd`` (created with ``mode`` if missing), opened; ``fd`` is closed."""
    try:
        try:
            os.mkdir(name, mode, dir_fd=fd)
        except FileExistsError:
            pass
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)


class Reserve:
    """Space held back in OUTPUT while a run writes, given up when the disk fills.

    A full disk is found by the write that fails; the copies written before
    it are only done once the state records them, and that commit needs a
    little space too.  Releasing the reserve gives it, and room for
    ``predictions.csv``.  On a disk too full to hold it the run goes on
    without one.
    """

    SIZE = 256 * 1024

    def __init__(self, output: Path):
        self.path = Path(output) / STATE_DIR_NAME / "reserve"

    def __enter__(self) -> Reserve:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                os.posix_fallocate(fd, 0, self.SIZE)
            finally:
                os.close(fd)
        except OSError:
            self.release()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> bool:
        """Give the space back; whether there was any to give."""
        try:
            self.path.unlink()
            return True
        except OSError:
            return False


def clear_temporaries(output: Path) -> int:
    """Remove what a killed run left in OUTPUT's temporary folder; return how many."""
    try:
        leftovers = list(os.scandir(temp_folder(output)))
    except FileNotFoundError:
        return 0
    for entry in leftovers:
        Path(entry.path).unlink(missing_ok=True)
    return len(leftovers)


def clear_scattered_temporaries(output: Path) -> int:
    """Versions before 0.2 left temporaries beside the photos; one walk of OUTPUT clears them, once."""
    removed = 0
    for temp in Path(output).rglob(f"{TEMP_PREFIX}*"):
        temp.unlink(missing_ok=True)
        removed += 1
    return removed


def folder_mode(source: Path) -> int:
    """The mode for an OUTPUT folder mirroring ``source``: no more than it grants, and writable by us."""
    try:
        return (os.stat(source).st_mode & 0o777) | 0o700
    except OSError:
        return 0o700


def make_folders(output: Path, rel_folder: Path, input_dir: Path) -> None:
    """Create the missing folders of ``output/rel_folder``, each with its INPUT folder's :func:`folder_mode`.

    One folder at a time, relative to the one before: any depth is made.
    """
    fd, source = os.open(output, _DIR_FLAGS), Path(input_dir)
    for part in Path(rel_folder).parts:
        source = source / part
        fd = _child(fd, part, folder_mode(source))
    os.close(fd)


#: A cell starting with one of these may run as a formula in a spreadsheet (OWASP, "CSV injection");
#: the apostrophe is escaped too, so that reading back is unambiguous.
_ESCAPED_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_text(cell: object) -> str:
    """``cell`` as text a spreadsheet shows but never runs: a risky first character gets a leading ``'``."""
    text = str(cell)
    return "'" + text if text.startswith(_ESCAPED_STARTS) else text


def from_spreadsheet_text(text: str) -> str:
    """Undo :func:`spreadsheet_text`, for reading our own CSVs back."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_ESCAPED_STARTS) else text


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_text(cell) for cell in header])
    writer.writerows([spreadsheet_text(cell) for cell in row] for row in rows)
    return buffer.getvalue().encode("utf-8")
