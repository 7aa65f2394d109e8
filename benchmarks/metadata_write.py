"""Writing tags into full-size JPEGs: terc-tag's own writer, the exiv2 writer it replaced, and ExifTool.

    python benchmarks/metadata_write.py [--repeat 5]

Times the three on the full-size ISS photos (``write_keywords``, which edits
only the keyword segments; 0.1's writer, exiv2 fed the JPEG's header;
ExifTool as a long-lived ``-stay_open`` process, which has to go through a
file) and prints the ratios measured in this one run.
benchmarks/lossless.py shows what each changes besides the keywords.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import DEFAULT_SOURCE, ExifTool, exiv2_keywords

from tagger.metadata import add_keywords

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
    exiftool = ExifTool()
    exiv2 = per_photo_ms(exiv2_keywords, photos, args.repeat)
    stay_open = per_photo_ms(exiftool.keywords, photos, args.repeat)
    own = per_photo_ms(add_keywords, photos, args.repeat)
    exiftool.close()
    print(f"{len(photos)} photos, {sum(map(len, photos)) / len(photos) / 1e6:.1f} MB on average, {args.repeat} rounds")
    print(f"exiv2, header only (0.1):   {exiv2:7.2f} ms per photo ({exiv2 / own:.1f}x terc-tag's)")
    print(f"ExifTool, -stay_open:       {stay_open:7.2f} ms per photo ({stay_open / own:.1f}x terc-tag's)")
    print(f"terc-tag's own writer:      {own:7.2f} ms per photo")


if __name__ == "__main__":
    main()
