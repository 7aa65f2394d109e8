"""Compare every tagged copy with its original, field by field and pixel by pixel.

    python benchmarks/lossless.py FOLDER [FOLDER ...] [--writer terc-tag|exiv2|exiftool]

For each JPEG, TIFF, PNG or MPO under the folders, keywords are written (by
terc-tag's writer, or for comparison by exiv2, the writer it replaced, or by
ExifTool), then:

* ``exiftool -j -G1 -a -u -n -b`` of the copy must equal the original's, but for
  the keyword fields (XMP dc:subject, IPTC Keywords, EXIF XPKeywords), the
  IPTC digest, the File group and byte positions that must move (a
  thumbnail's or an MPO image's start, and the MPO's first image length;
  their data is compared);
* Pillow must open the copy whenever it opened the original, with the same
  number of frames and the same pixels in each.

Prints one line per file that differs and a count; exit 1 if any differs.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import ExifTool, exiv2_keywords  # noqa: E402

from tagger.metadata import MetadataError, write_keywords  # noqa: E402

SUFFIXES = {".jpg", ".jpeg", ".tif", ".tiff", ".png", ".mpo"}
KEYWORD_FIELDS = {"XMP-dc:Subject", "IPTC:Keywords", "IFD0:XPKeywords", "Photoshop:IPTCDigest", "SourceFile"}
IGNORED_GROUPS = {"File", "ExifTool", "System"}
#: Byte positions that must move when a segment before them grows, and the length of an MPO's first
#: image, which grows with its header; what they point to is compared (exiftool -b gives the thumbnail
#: and the later MPO images themselves).
MOVED_OFFSETS = ("ThumbnailOffset", "MPImageStart", "PreviewImageStart", "JpgFromRawStart", "OtherImageStart",
                 "MPImage1:MPImageLength")
TAGS = ["Night", "Stars"]


def exiftool(paths: list[Path]) -> dict[str, dict]:
    out = subprocess.run(["exiftool", "-j", "-G1", "-a", "-u", "-n", "-b", "-struct", *map(str, paths)],
                         capture_output=True, text=True)
    return {item["SourceFile"]: item for item in json.loads(out.stdout or "[]")}


def frames(data: bytes):
    """Every frame's pixels as Pillow reads them, or the error it gives."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            result = []
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                result.append(np.asarray(image.copy()))
            return result
    except Exception as exc:  # noqa: BLE001 - any failure to read is what we compare
        return f"unreadable: {type(exc).__name__}"


def fields(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k.split(":")[0] not in IGNORED_GROUPS and k not in KEYWORD_FIELDS
            and not k.endswith(MOVED_OFFSETS)}


def write_copies(originals: list[Path], write, folder: Path) -> tuple[dict[Path, Path], list[tuple[Path, str]]]:
    """Each original tagged by ``write(bytes, suffix) -> bytes`` into ``folder``; those it refused, with why."""
    copies, refused = {}, []
    for index, path in enumerate(originals):
        try:
            written = write(path.read_bytes(), path.suffix)
        except (MetadataError, RuntimeError, ValueError) as exc:  # refusing is allowed (exiv2: RuntimeError, ValueError)
            refused.append((path, str(exc)))
            continue
        copies[path] = folder / f"{index:04d}{path.suffix}"
        copies[path].write_bytes(written)
    return copies, refused


def differences(copies: dict[Path, Path]) -> dict[Path, list[str]]:
    """For each original whose copy differs beyond its keywords, what differs."""
    before, after = exiftool(list(copies)), exiftool(list(copies.values()))
    found = {}
    for original, copy in copies.items():
        a, b = fields(before.get(str(original), {})), fields(after.get(str(copy), {}))
        problems = [f"{k}: {str(a.get(k))[:30]!r} -> {str(b.get(k))[:30]!r}" for k in sorted(a.keys() | b.keys())
                    if a.get(k) != b.get(k)]
        old, new = frames(original.read_bytes()), frames(copy.read_bytes())
        if isinstance(old, list) and (isinstance(new, str) or len(old) != len(new)
                                      or not all(np.array_equal(x, y) for x, y in zip(old, new))):
            problems.append(f"frames: {len(old)} -> {new if isinstance(new, str) else len(new)}")
        if problems:
            found[original] = problems
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--writer", choices=["terc-tag", "exiv2", "exiftool"], default="terc-tag")
    args = parser.parse_args()
    originals = sorted(p for folder in args.folders for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    exiftool_writer = ExifTool() if args.writer == "exiftool" else None
    write = {"terc-tag": lambda data, suffix: write_keywords(data, TAGS)[0],
             "exiv2": lambda data, suffix: exiv2_keywords(data, TAGS),
             "exiftool": lambda data, suffix: exiftool_writer.keywords(data, TAGS, suffix)}[args.writer]
    with tempfile.TemporaryDirectory() as tmp:
        copies, refused = write_copies(originals, write, Path(tmp))
        changed = differences(copies)
    if exiftool_writer:
        exiftool_writer.close()
    for path, reason in refused:
        print(f"refused (copied unchanged) {path}: {reason[:100]}")
    for path, problems in changed.items():
        print(f"changed {path}: " + "; ".join(problems[:6]))
    print(f"{args.writer}: {len(copies)} files tagged, {len(changed)} changed beyond their keywords, "
          f"{len(refused)} refused")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
