"""Stage 1: find the photos under a folder.

Every file is accounted for: a photo goes to ``photos``; anything else goes
to ``skipped`` with a reason, so nothing is dropped silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".png"})

#: Folders terc-tag itself writes; never treated as input.
STATE_DIR_NAME = ".terc-tag"


@dataclass
class Found:
    root: Path
    photos: list[Path] = field(default_factory=list)  # relative to root
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def is_photo_name(name: str) -> bool:
    return Path(name).suffix.lower() in PHOTO_SUFFIXES


def discover(root: str | os.PathLike) -> Found:
    """Walk ``root`` recursively, following folder links but never looping."""
    root = Path(root)
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
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = entry.is_file(follow_symlinks=True)
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
