"""End-to-end tagging speed against the model alone and against a naive pipeline.

    python benchmarks/throughput.py --photos 600 [--backend tf] [--batch-size 32]

All three are measured in this one run, on full-size ISS photos (4928x3280,
1-3.5 MB), and printed with their ratios:

* model only: ``session.predict`` on ready-made batches (no decoding, no I/O);
* terc-tag: ``tag_folder`` on a folder of ``--photos`` photos, everything included,
  then again with terc-tag 0.1's metadata writer (exiv2) in place of its own;
* naive: per photo a full-size decode and resize, ``model.predict`` on one
  photo, and one exiftool process per predicted tag (as the original tool did).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import DEFAULT_SOURCE, exiv2_keywords, many_photos, model_only

import tagger.tagging.stages
from tagger.bundle import Bundle
from tagger.cli.common import default_model
from tagger.metadata import Edited
from tagger.sessions import load_session
from tagger.tagging.pipeline import tag_folder


def naive(session, photos: list[Path], out: Path) -> float:
    out.mkdir()
    thresholds = session.thresholds(0.5)
    started = time.perf_counter()
    for photo in photos:
        with Image.open(photo) as image:
            pixels = np.asarray(image.convert("RGB").resize(session.size, Image.BILINEAR), dtype=np.float32)
        probabilities = session.predict(pixels[None])[0]  # one photo per call
        copy = shutil.copy(photo, out / photo.name)
        for tag, p, t in zip(session.vocabulary, probabilities, thresholds, strict=False):
            if p >= t:
                subprocess.run(["exiftool", "-q", "-overwrite_original", f"-XMP-dc:Subject+={tag}",
                                f"-IPTC:Keywords+={tag}", str(copy)], check=True)
    return len(photos) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--naive-photos", type=int, default=30, help="photos for the (slow) naive pipeline")
    parser.add_argument("--backend", default="tf")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    if shutil.which("exiftool") is None:
        raise SystemExit("the naive pipeline needs exiftool (Debian: libimage-exiftool-perl)")

    session = load_session(Bundle(default_model(), args.backend))
    with tempfile.TemporaryDirectory() as tmp:
        photos = many_photos(Path(tmp) / "in", args.photos, args.source)
        ours = tag_folder(Path(tmp) / "in", Path(tmp) / "out", session, batch_size=args.batch_size)
        assert len(ours.tagged) == args.photos, ours.failed
        # 0.1's writer
        tagger.tagging.stages.edit_keywords = lambda data, tags: Edited(exiv2_keywords(data, tags), [], [])
        before = tag_folder(Path(tmp) / "in", Path(tmp) / "out-exiv2", session, batch_size=args.batch_size)
        alone = model_only(session, args.batch_size, batches=max(3, args.photos // args.batch_size // 2))
        slow = naive(session, photos[: args.naive_photos], Path(tmp) / "naive")
    e2e = ours.photos_per_second
    print(f"backend {args.backend}, batch {args.batch_size}, {args.photos} full-size photos")
    print(f"model only:        {alone:7.1f} photos/s")
    print(f"terc-tag tag:      {e2e:7.1f} photos/s   ({e2e / alone:.0%} of the model alone)")
    print(f"  with 0.1's exiv2 writer: {before.photos_per_second:7.1f} photos/s "
          f"(this writer: {e2e / before.photos_per_second:.2f}x)")
    print(f"naive pipeline:    {slow:7.2f} photos/s   (terc-tag is {e2e / slow:.1f}x faster; "
          f"{args.naive_photos} photos)")


if __name__ == "__main__":
    main()
