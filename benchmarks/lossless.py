"""Compare every tagged copy with its original, field by field and pixel by pixel.

    python benchmarks/lossless.py FOLDER [FOLDER ...] [--writer terc-tag|exiv2|exiftool]
    python benchmarks/fetch_corpus.py /tmp/corpus && python benchmarks/lossless.py /tmp/corpus

For each JPEG, TIFF, PNG or MPO under the folders (any folder: the files are
found by suffix), keywords are written (by terc-tag's writer, or for
comparison by exiv2, the writer it replaced, or by ExifTool), then:

* ``exiftool -j -G1 -a -u -n -b`` of the copy must equal the original's, but for
  the keyword fields (XMP dc:subject, IPTC Keywords, EXIF XPKeywords), the
  IPTC digest, the File group and byte positions that must move (a
  thumbnail's or an MPO image's start, and the MPO's first image length;
  their data is compared);
* exiv2 (pyexiv2) must read the same EXIF, IPTC and XMP from both, keywords aside;
* Pillow must open the copy whenever it opened the original, with the same
  number of frames and the same pixels in each;
* each keyword field of the copy must hold the original's entries, in order
  (empty ones too), followed by the new tags;
* an IPTC digest that was current in the original must be current in the copy.

Prints what it found: copies changed beyond their keywords, photos partly
tagged (by reason), stale digests (those current before, and those left as
they were: all-zeros or already stale), files the writer refused and files
:mod:`tagger.decode` refuses (the command line copies both unchanged).
Exit 1 if a copy changed or a current digest went stale.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyexiv2
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import ExifTool, exiv2_keywords

from tagger.decode import DecodeError, decode
from tagger.metadata import EXIF_XPKEYWORDS, IPTC_KEYWORDS, XMP_SUBJECT, MetadataError, write_keywords

SUFFIXES = {".jpg", ".jpeg", ".tif", ".tiff", ".png", ".mpo"}
KEYWORD_FIELDS = {"XMP-dc:Subject", "IPTC:Keywords", "IFD0:XPKeywords", "Photoshop:IPTCDigest", "SourceFile"}
IGNORED_GROUPS = {"File", "ExifTool", "System"}
#: Byte positions that must move when a segment before them grows, and the length of an MPO's first
#: image, which grows with its header; what they point to is compared (exiftool -b gives the thumbnail
#: and the later MPO images themselves).
MOVED_OFFSETS = ("ThumbnailOffset", "MPImageStart", "PreviewImageStart", "JpgFromRawStart", "OtherImageStart",
                 "MPImage1:MPImageLength")
TAGS = ["Night", "Stars"]
KEYWORD_LISTS = ("XMP-dc:Subject", "IPTC:Keywords", "IFD0:XPKeywords")
RDF, DC = "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "http://purl.org/dc/elements/1.1/"
#: exiv2's keyword fields, a TIFF's containers of them (its XMP packet, IPTC block and Photoshop resources,
#: read by exiv2 as raw EXIF tags as well), and the offsets that must move (what they point to is compared
#: by exiftool), the maker note's raw bytes among them when an offset in it points past the EXIF block.
EXIV2_IGNORED = {XMP_SUBJECT, IPTC_KEYWORDS, EXIF_XPKEYWORDS, "Exif.Image.XMLPacket", "Exif.Image.IPTCNAA",
                 "Exif.Image.ImageResources", "Exif.Thumbnail.JPEGInterchangeFormat", "Exif.Image.GPSTag",
                 "Exif.Image.ExifTag", "Exif.Photo.InteroperabilityTag", "Exif.Photo.MakerNote"}


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
    except Exception as exc:  # any failure to read is what we compare
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
        except (MetadataError, RuntimeError, ValueError) as exc:  # refusing is allowed (exiv2 raises the others)
            refused.append((path, str(exc)))
            continue
        copies[path] = folder / f"{index:04d}{path.suffix}"
        copies[path].write_bytes(written)
    return copies, refused


def exiv2_fields(data: bytes) -> dict | str:
    """Every EXIF, IPTC and XMP field as exiv2 reads it, keywords aside; or the error it gives."""
    try:
        with pyexiv2.ImageData(data) as image:
            found = {**image.read_exif(), **image.read_iptc(), **image.read_xmp()}
    except Exception as exc:  # any failure to read is what we compare
        return f"unreadable: {type(exc).__name__}"
    return {k: v for k, v in found.items() if k not in EXIV2_IGNORED}


def differences(copies: dict[Path, Path]) -> dict[Path, list[str]]:
    """For each original whose copy differs beyond its keywords, what differs (exiftool, exiv2, Pillow)."""
    before, after = exiftool(list(copies)), exiftool(list(copies.values()))
    found = {}
    for original, copy in copies.items():
        a, b = fields(before.get(str(original), {})), fields(after.get(str(copy), {}))
        problems = [f"{k}: {str(a.get(k))[:30]!r} -> {str(b.get(k))[:30]!r}" for k in sorted(a.keys() | b.keys())
                    if a.get(k) != b.get(k)]
        old_exiv2, new_exiv2 = exiv2_fields(original.read_bytes()), exiv2_fields(copy.read_bytes())
        if isinstance(old_exiv2, dict) and isinstance(new_exiv2, dict):
            problems += [f"exiv2 {k}: {str(old_exiv2.get(k))[:30]!r} -> {str(new_exiv2.get(k))[:30]!r}"
                         for k in sorted(old_exiv2.keys() | new_exiv2.keys())
                         if old_exiv2.get(k) != new_exiv2.get(k)]
        elif isinstance(old_exiv2, dict):
            problems.append(f"exiv2: {new_exiv2}")
        old, new = frames(original.read_bytes()), frames(copy.read_bytes())
        if isinstance(old, list) and (isinstance(new, str) or len(old) != len(new)
                                      or not all(np.array_equal(x, y) for x, y in zip(old, new, strict=False))):
            problems.append(f"frames: {len(old)} -> {new if isinstance(new, str) else len(new)}")
        if problems:
            found[original] = problems
    return found


def xmp_packets(paths: list[Path]) -> dict[str, str]:
    """Each file's XMP packet as exiftool extracts it."""
    out = subprocess.run(["exiftool", "-j", "-b", "-XMP", *map(str, paths)], capture_output=True, text=True)
    packets = {item["SourceFile"]: str(item.get("XMP", "")) for item in json.loads(out.stdout or "[]")}
    return {path: base64.b64decode(packet[7:]).decode("utf-8", "replace") if packet.startswith("base64:") else packet
            for path, packet in packets.items()}


def keyword_lists(meta: dict, packet: str) -> dict[str, list[str]]:
    """Each keyword field's entries.  XMP's are read from the packet with ElementTree, as exiftool shows an
    empty ``rdf:Bag`` and a bag of one empty entry alike, and exiv2 drops empty entries."""
    lists = {}
    for field in KEYWORD_LISTS:
        value = meta.get(field)
        if value is None:
            lists[field] = []
        elif field == "IFD0:XPKeywords":
            lists[field] = str(value).split(";") if str(value) else []
        else:
            lists[field] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    try:
        root = ET.fromstring(packet.strip("\x00 \t\r\n")) if packet.strip() else None
    except ET.ParseError:
        return lists
    if root is not None:
        lists["XMP-dc:Subject"] = [item.text or "" for node in root.iter(f"{{{DC}}}subject")
                                   for item in node.iter(f"{{{RDF}}}li")]
    return lists


def keyword_findings(copies: dict[Path, Path], tags: list[str]) -> dict[Path, list[str]]:
    """For each copy whose keyword field lost, reordered or misspelled an entry: what it holds instead.

    A field that the copy does not hold (left alone, or none in this format) is not judged here."""
    before, after = exiftool(list(copies)), exiftool(list(copies.values()))
    packets = {**xmp_packets(list(copies)), **xmp_packets(list(copies.values()))}
    found = {}
    for original, copy in copies.items():
        old = keyword_lists(before.get(str(original), {}), packets.get(str(original), ""))
        new = keyword_lists(after.get(str(copy), {}), packets.get(str(copy), ""))
        wrong = []
        for field in KEYWORD_LISTS:
            have = {word.casefold() for word in old[field]}
            expected = old[field] + [tag for tag in tags if tag.casefold() not in have]
            if new[field] != old[field] and new[field] != expected:
                wrong.append(f"{field}: {old[field][:6]} -> {new[field][:8]}")
        if wrong:
            found[original] = wrong
    return found


def digest_findings(copies: dict[Path, Path]) -> dict[str, list[Path]]:
    """Copies whose IPTC digest is not current, split by what the original's was."""
    before, after = exiftool(list(copies)), exiftool(list(copies.values()))
    found: dict[str, list[Path]] = {"was current": [], "was all zeros": [], "was already stale": []}
    for original, copy in copies.items():
        a, b = before.get(str(original), {}), after.get(str(copy), {})
        if not _stale(b):
            continue
        digest = str(a.get("Photoshop:IPTCDigest", ""))
        kind = ("was all zeros" if digest.strip("0") == "" else "was already stale" if _stale(a) else "was current")
        found[kind].append(original)
    return found


def _stale(meta: dict) -> bool:
    current, digest = meta.get("File:CurrentIPTCDigest"), meta.get("Photoshop:IPTCDigest")
    return "IPTCDigest is not current" in str(meta) or (current is not None and digest is not None
                                                           and current != digest)


def decode_refusals(originals: list[Path]) -> list[tuple[Path, str]]:
    """The files the tag command's decoder refuses (it copies them unchanged), with why."""
    refused = []
    for path in originals:
        try:
            decode(path.read_bytes(), (224, 224))
        except DecodeError as exc:
            refused.append((path, str(exc)))
    return refused


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--writer", choices=["terc-tag", "exiv2", "exiftool"], default="terc-tag")
    args = parser.parse_args()
    originals = sorted(p for folder in args.folders for p in folder.rglob("*")
                       if p.suffix.lower() in SUFFIXES and p.is_file())
    exiftool_writer = ExifTool() if args.writer == "exiftool" else None
    write = {"terc-tag": lambda data, suffix: write_keywords(data, TAGS)[0],
             "exiv2": lambda data, suffix: exiv2_keywords(data, TAGS),
             "exiftool": lambda data, suffix: exiftool_writer.keywords(data, TAGS, suffix)}[args.writer]
    with tempfile.TemporaryDirectory() as tmp:
        copies, refused = write_copies(originals, write, Path(tmp))
        changed = differences(copies)
        keywords = keyword_findings(copies, TAGS)
        digests = digest_findings(copies)
    if exiftool_writer:
        exiftool_writer.close()
    undecodable = decode_refusals(originals)
    notes = ({path: write_keywords(path.read_bytes(), TAGS)[1] for path in copies} if args.writer == "terc-tag"
             else {})
    for path, reason in refused:
        print(f"refused by the writer (copied unchanged) {path}: {reason[:100]}")
    for path, reason in undecodable:
        print(f"refused by the decoder (copied unchanged) {path}: {reason[:100]}")
    for path, problems in changed.items():
        print(f"changed {path}: " + "; ".join(problems[:6]))
    for path, problems in keywords.items():
        print(f"keywords wrong {path}: " + "; ".join(problems))
    reasons: dict[str, list[Path]] = {}
    for path, found in notes.items():
        for note in found:
            reasons.setdefault(note, []).append(path)
    for reason, paths in sorted(reasons.items(), key=lambda item: -len(item[1])):
        print(f"partly tagged, {len(paths)} photo(s): {reason[:110]}: " + ", ".join(p.name for p in paths[:4]))
    for kind, paths in digests.items():
        for path in paths:
            print(f"stale IPTC digest ({kind} in the original) {path}")
    print(f"{args.writer}: {len(originals)} files, {len(copies)} tagged, {len(changed)} changed beyond their "
          f"keywords, {len(keywords)} with keywords lost or reordered, "
          f"{sum(1 for found in notes.values() if found)} partly tagged, "
          f"{len(digests['was current'])} stale digests that were current "
          f"({len(digests['was all zeros'])} all-zeros and {len(digests['was already stale'])} stale ones left as "
          f"they were), {len(refused)} refused by the writer, {len(undecodable)} by the decoder")
    return 1 if changed or keywords or digests["was current"] else 0


if __name__ == "__main__":
    sys.exit(main())
