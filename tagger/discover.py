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
from dataclasses import dataclass, field
from pathlib import Path

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".png"})

#: Folders terc-tag itself writes; never treated as input.
STATE_DIR_NAME = ".terc-tag"

LINK_NOT_FOLLOWED = "symbolic link, not followed (--follow-symlinks follows links inside INPUT)"


class Refused(OSError):
    """A path that is not a regular file inside INPUT; the message says why."""


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
    """Walk ``root`` recursively; links are skipped, or followed inside ``root`` only, never looping."""
    root = Path(root)
    real_root = os.path.realpath(root)
    found = Found(root)
    seen_dirs: set[tuple[int, int]] = set()

    def walk(folder: Path) -> None:
        try:
            st = folder.stat()
        except OSError as exc:
            found.skipped.append((folder.relative_to(root), f"unreadable folder: {exc.strerror}"))
            return
        if (st.st_dev, st.st_ino) in seen_dirs:
            found.skipped.append((folder.relative_to(root), "folder link loops back to a folder already walked"))
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            found.skipped.append((folder.relative_to(root), f"unreadable folder: {exc.strerror}"))
            return
        for entry in entries:
            path = Path(entry.path)
            rel = path.relative_to(root)
            if entry.name == STATE_DIR_NAME:
                continue
            if entry.is_symlink():
                if not follow_symlinks:
                    found.skipped.append((rel, LINK_NOT_FOLLOWED))
                    continue
                target = os.path.realpath(path)
                if not is_within(target, real_root):
                    found.skipped.append((rel, f"link to {target}, outside INPUT: refused"))
                    continue
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError as exc:  # e.g. a link that loops on itself
                found.skipped.append((rel, f"cannot follow: {exc.strerror}"))
                continue
            if is_dir:
                walk(path)
            elif not is_file:
                reason = "broken link" if entry.is_symlink() else "not a regular file"
                found.skipped.append((rel, reason))
            elif is_photo_name(entry.name):
                found.photos.append(rel)
            else:
                found.skipped.append((rel, "not a JPEG, TIFF or PNG"))

    walk(root)
    return found


def read_inside(root: str | os.PathLike, rel: str | os.PathLike,
                follow_symlinks: bool = False) -> tuple[bytes, os.stat_result]:
    """The bytes and ``fstat`` of ``root/rel``, if what is opened is a regular file inside ``root``.

    Judged on the opened file itself, not on an earlier look at its name: the
    last component is opened without following a link (unless
    ``follow_symlinks``) and without blocking (a FIFO swapped in cannot hang
    the run), then ``fstat`` must show a regular file and the kernel's own
    path for the descriptor must lie inside ``root`` (and, links not
    followed, be exactly ``root/rel``: no folder on the way was swapped for
    a link).  Raises :class:`Refused` or another ``OSError``.
    """
    real_root = os.path.realpath(root)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(os.path.join(root, rel), flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise Refused(errno.ELOOP, LINK_NOT_FOLLOWED) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(errno.EINVAL, "not a regular file")
        opened = _opened_path(fd, os.path.join(root, rel), st)
        expected = os.path.join(real_root, rel)
        if not is_within(opened, real_root):
            raise Refused(errno.EACCES, f"resolves to {opened}, outside INPUT: refused")
        if not follow_symlinks and opened != os.path.normpath(expected):
            raise Refused(errno.EACCES, f"resolves to {opened} through a symbolic link: refused")
        return handle.read(), st


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
