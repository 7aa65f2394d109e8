"""Writing tags into full-size JPEGs: whole file through exiv2, or its header only.

    python benchmarks/metadata_write.py [--repeat 5]

exiv2 rewrites the whole image once for each of XMP, IPTC and EXIF, so a
3 MB photo is copied three times to add three keywords.  ``add_keywords``
sends only the JPEG's header (the segments before the first scan) through
exiv2 and appends the compressed scan unchanged.  This script times both on
the full-size ISS photos, checks they give the same bytes, and prints the
ratio measured in this one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import DEFAULT_SOURCE  # noqa: E402

from tagger.metadata import _add_keywords, add_keywords  # noqa: E402

TAGS = ["Night", "Aurora", "Movie"]


def per_photo_ms(edit, photos: list[bytes], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for data in photos:
            edit(data, TAGS)
    return (time.perf_counter() - started) * 1000 / (repeat * len(photos))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sorted(args.source.glob("*.jpg"))]
    if not photos:
        raise SystemExit(f"no JPEGs in {args.source}")
    same = sum(add_keywords(d, TAGS) == _add_keywords(d, TAGS) for d in photos)
    whole = per_photo_ms(_add_keywords, photos, args.repeat)
    header = per_photo_ms(add_keywords, photos, args.repeat)
    print(f"{len(photos)} photos, {sum(map(len, photos)) / len(photos) / 1e6:.1f} MB on average, "
          f"{args.repeat} rounds; identical output for {same}/{len(photos)}")
    print(f"whole file through exiv2: {whole:.1f} ms per photo")
    print(f"header only:              {header:.1f} ms per photo")
    print(f"speed-up: {whole / header:.1f}x")


if __name__ == "__main__":
    main()
