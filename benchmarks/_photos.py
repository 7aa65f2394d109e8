"""A folder of many full-size ISS photos, for the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "iss-fullres"


def many_photos(folder: Path, count: int, source: Path = DEFAULT_SOURCE) -> list[Path]:
    """``count`` photos in ``folder``, cycling through ``source``'s JPEGs.

    Hard links, not copies: the same bytes on disk under distinct names, so a
    2,000-photo folder costs no disk space; every photo is still read,
    decoded and written separately.
    """
    originals = sorted(p for p in Path(source).glob("*.jpg"))
    if not originals:
        raise SystemExit(f"no JPEGs in {source}; pass --source")
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        target = folder / f"{originals[i % len(originals)].stem}-{i:05d}.jpg"
        if not target.exists():
            os.link(originals[i % len(originals)], target)
        made.append(target)
    return made
