"""What the benchmarks share: a folder of many full-size ISS photos, and model-only speed."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

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


def model_only(session, batch_size: int, batches: int) -> float:
    """Photos per second of ``session.predict`` alone, on ready-made batches (no decoding, no I/O)."""
    pixels = np.random.default_rng(0).integers(0, 256, (batch_size, *session.size, 3), dtype=np.uint8)
    session.predict(pixels)  # warm up
    started = time.perf_counter()
    for _ in range(batches):
        session.predict(pixels)
    return batch_size * batches / (time.perf_counter() - started)


def exiv2_keywords(data: bytes, tags: list[str]) -> bytes:
    """terc-tag 0.1's writer, kept as the baseline: exiv2 merges the tags into XMP, IPTC and EXIF,
    fed only a JPEG's header (segments before the first scan) and the scan appended unchanged."""
    import pyexiv2

    from tagger.metadata import merge
    from tagger.metadata.write import WriteError, _jpeg_segments

    try:
        scan = _jpeg_segments(data)[1]
    except (WriteError, IndexError):
        scan = -1
    header = data[:scan] + b"\xff\xd9" if scan > 0 else data
    with pyexiv2.ImageData(header) as image:
        xmp, iptc, exif = image.read_xmp(), image.read_iptc(), image.read_exif()
        subject, keywords = xmp.get("Xmp.dc.subject") or [], iptc.get("Iptc.Application2.Keywords") or []
        xp = [w for w in (exif.get("Exif.Image.XPKeywords") or "").rstrip("\x00").split(";") if w]
        image.modify_xmp({"Xmp.dc.subject": merge(subject, tags)})
        image.modify_iptc({"Iptc.Application2.Keywords": merge(keywords, tags)})
        image.modify_exif({"Exif.Image.XPKeywords": ";".join(merge(xp, tags))})
        edited = image.get_bytes()
    return edited[:-2] + data[scan:] if scan > 0 else edited


class ExifTool:
    """ExifTool as a long-lived ``-stay_open`` process (the fast way to drive it), writing keywords the way
    its documentation recommends (``+=`` adds to a list, ``-=`` first so that a rerun adds no duplicate)."""

    def __init__(self):
        self.process = subprocess.Popen(["exiftool", "-stay_open", "True", "-@", "-"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.folder = tempfile.TemporaryDirectory()

    def keywords(self, data: bytes, tags: list[str], suffix: str = ".jpg") -> bytes:
        path = os.path.join(self.folder.name, "photo" + suffix)
        with open(path, "wb") as handle:
            handle.write(data)
        words = ", ".join('"' + tag + '"' for tag in tags)
        args = ["-overwrite_original"]
        for tag in tags:
            args += [f"-XMP-dc:Subject-={tag}", f"-XMP-dc:Subject+={tag}", f"-IPTC:Keywords-={tag}",
                     f"-IPTC:Keywords+={tag}"]
        args += ["-XPKeywords<${FileName;my $had = $self->GetValue('XPKeywords') // ''; my %seen; "
                 "$_ = join(';', grep { length and not $seen{lc $_}++ } "
                 f"(split(/;/, $had), {words}))}}", path]
        self.process.stdin.write("\n".join(args) + "\n-execute\n")
        self.process.stdin.flush()
        while not self.process.stdout.readline().startswith("{ready"):
            pass
        with open(path, "rb") as handle:
            return handle.read()

    def close(self) -> None:
        self.process.stdin.write("-stay_open\nFalse\n")
        self.process.stdin.flush()
        self.process.wait()
        self.folder.cleanup()
