"""Stage 1: find the photos under a folder, and read them without leaving it.

INPUT is often a downloads folder that other people and programs write to,
while OUTPUT is published, so only regular files inside INPUT are ever read:

* a symbolic link (file or folder) is not followed, and is listed as skipped;
  with ``follow_symlinks`` it is followed only when its target lies inside
  INPUT;
* :func:`read_inside` checks the rule again on the file it actually opened,
  so a file swapped for a link between the walk and the read gains nothing.

Every file is accounted for: a photo goes to ``photos``; anything else goes
to ``skipped`` with a reason, so nothing is dropped silently.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tagger.errors import TercTagError

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".png"})

#: Folders terc-tag itself writes; never treated as input.
STATE_DIR_NAME = ".terc-tag"

LINK_NOT_FOLLOWED = "symbolic link, not followed (--follow-symlinks follows links inside INPUT)"


class Refused(TercTagError, OSError):
    """A path that is not a regular file inside INPUT; the message says why."""

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass
class Found:
    root: Path
    photos: list[Path] = field(default_factory=list)  # relative to root
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def is_photo_name(name: str) -> bool:
    return Path(name).suffix.lower() in PHOTO_SUFFIXES


def is_within(path: str, root: str) -> bool:
    """Whether the absolute, resolved ``path`` is ``root`` or lies under it."""
    return os.path.commonpath([path, root]) == root


def discover(root: str | os.PathLike, follow_symlinks: bool = False) -> Found:
    """Walk ``root`` recursively; links are skipped, or followed inside ``root`` only, never looping.

    Each folder is opened relative to its parent's descriptor, so a tree
    deeper than PATH_MAX is walked to the bottom and every photo in it found.
    """
    root = Path(root)
    real_root = os.path.realpath(root)
    found = Found(root)
    seen_dirs: set[tuple[int, int]] = set()

    def walk(fd: int, rel: Path) -> None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) in seen_dirs:
            found.skipped.append((rel, "folder link loops back to a folder already walked"))
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(fd), key=lambda e: e.name)
        except OSError as exc:
            found.skipped.append((rel, f"unreadable folder: {exc.strerror}"))
            return
        for entry in entries:
            path = rel / entry.name
            if entry.name == STATE_DIR_NAME:
                continue
            link = entry.is_symlink()
            if link:
                if not follow_symlinks:
                    found.skipped.append((path, LINK_NOT_FOLLOWED))
                    continue
                target = os.path.realpath(root / path)
                if not is_within(target, real_root):
                    found.skipped.append((path, f"link to {target}, outside INPUT: refused"))
                    continue
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError as exc:  # e.g. a link that loops on itself
                found.skipped.append((path, f"cannot follow: {exc.strerror}"))
                continue
            if is_dir:
                try:
                    child = os.open(entry.name, _DIR_FLAGS | (0 if link else os.O_NOFOLLOW), dir_fd=fd)
                except OSError as exc:
                    found.skipped.append((path, f"unreadable folder: {exc.strerror}"))
                    continue
                try:
                    walk(child, path)
                finally:
                    os.close(child)
            elif not is_file:
                found.skipped.append((path, _not_regular(entry, fd) if link else "not a regular file"))
            elif is_photo_name(entry.name):
                found.photos.append(path)
            else:
                found.skipped.append((path, "not a JPEG, TIFF or PNG"))

    try:
        top = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        found.skipped.append((Path("."), f"unreadable folder: {exc.strerror}"))
        return found
    try:
        walk(top, Path())
    finally:
        os.close(top)
    return found


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


def _not_regular(entry: os.DirEntry, fd: int) -> str:
    """Why a followed link is not a photo: it leads nowhere, or to what it leads."""
    try:
        target = os.stat(entry.name, dir_fd=fd)
    except OSError:
        return "broken link"
    return f"link to {_KINDS.get(stat.S_IFMT(target.st_mode), 'something')}, not a regular file"


def read_inside(root: str | os.PathLike, rel: str | os.PathLike,
                follow_symlinks: bool = False) -> tuple[bytes, os.stat_result]:
    """The bytes and ``fstat`` of ``root/rel``, if what is opened is a regular file inside ``root``.

    Judged on the opened file itself, not on an earlier look at its name:
    each folder on the way is opened relative to the one before (so a path
    longer than PATH_MAX is read too), without following a link unless
    ``follow_symlinks``, and the file without blocking (a FIFO swapped in
    cannot hang the run); ``fstat`` must then show a regular file.  Links
    followed, the kernel's own path for the descriptor must lie inside
    ``root``.  Raises :class:`Refused` or another ``OSError``.
    """
    parts = _parts(rel)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow_symlinks else os.O_NOFOLLOW)
    folder = open_folder(root, parts[:-1], follow_symlinks)
    try:
        fd = os.open(parts[-1], flags, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise Refused(errno.ELOOP, LINK_NOT_FOLLOWED) from None
        raise
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(errno.EINVAL, "not a regular file")
        if follow_symlinks:
            real_root = os.path.realpath(root)
            opened = _opened_path(fd, os.path.join(root, rel), st)
            if not is_within(opened, real_root):
                raise Refused(errno.EACCES, f"resolves to {opened}, outside INPUT: refused")
        return handle.read(), st


def stat_inside(root: str | os.PathLike, rel: str | os.PathLike, follow_symlinks: bool = False) -> os.stat_result:
    """``stat`` of ``root/rel`` (the last component's link followed only with ``follow_symlinks``), at any depth.

    By its whole path where the system takes it (one call: planning stats
    every photo of the archive), else walked as :func:`read_inside` walks it.
    """
    try:
        return os.stat(os.path.join(root, rel), follow_symlinks=follow_symlinks)
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
    parts = _parts(rel)
    folder = open_folder(root, parts[:-1], follow_symlinks)
    try:
        return os.stat(parts[-1], dir_fd=folder, follow_symlinks=follow_symlinks)
    finally:
        os.close(folder)


def open_folder(root: str | os.PathLike, parts: Sequence[str], follow_symlinks: bool = False) -> int:
    """A descriptor of the folder ``root/parts...``, opened one folder at a time (the caller closes it).

    Without ``follow_symlinks`` no folder on the way may be a link: one
    swapped in after the walk is :class:`Refused`, and says where it leads.
    """
    fd = os.open(root, _DIR_FLAGS)
    for depth, part in enumerate(parts):
        try:
            child = os.open(part, _DIR_FLAGS | (0 if follow_symlinks else os.O_NOFOLLOW), dir_fd=fd)
        except OSError as exc:
            link = exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(part, fd)
            os.close(fd)
            if link:
                target = os.path.realpath(os.path.join(root, *parts[:depth + 1]))
                inside = is_within(target, os.path.realpath(root))
                where = " through a symbolic link" if inside else ", outside INPUT"
                raise Refused(errno.EACCES, f"resolves to {target}{where}: refused") from None
            raise
        os.close(fd)
        fd = child
    return fd


def _is_link(name: str, fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _parts(rel: str | os.PathLike) -> tuple[str, ...]:
    """The names of a path relative to INPUT; one that climbs out of it is refused."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        raise Refused(errno.EACCES, f"{os.fspath(rel)!r} is not a path inside INPUT: refused")
    return parts


def _opened_path(fd: int, path: str, st: os.stat_result) -> str:
    """Where the file behind ``fd`` really lives: the kernel's answer on Linux, else a checked realpath."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        real = os.path.realpath(path)
        same = os.stat(real)
        if (same.st_dev, same.st_ino) != (st.st_dev, st.st_ino):
            raise Refused(errno.EACCES, "changed while it was being opened: refused") from None
        return real
