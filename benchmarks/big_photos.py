"""Peak memory of decoding a ~100-megapixel and a ~1-gigapixel JPEG, as the tag command does.

    python benchmarks/big_photos.py [--folder /tmp/big-photos]

The JPEGs are generated here (not committed): a baseline JPEG whose every
MCU row is the same entropy-coded strip between restart markers, written
row by row, so that making a gigapixel file costs no more memory than one
strip.  Each is decoded by :func:`tagger.decode.decode` in a fresh process,
which prints its peak resident memory (``ru_maxrss``) before and after.
Pillow alone (``Image.open(...).load()``) would need width x height x 3
bytes for the full image and refuses either file as a decompression bomb.
"""

from __future__ import annotations

import argparse
import io
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

MCU = 16  # 4:2:0 subsampling: 16x16-pixel MCUs


def big_jpeg(path: Path, width: int, height: int) -> Path:
    """Write a baseline RGB JPEG of ``width`` x ``height`` (``height`` a multiple of 16) to ``path``."""
    if height % MCU:
        raise ValueError("height must be a multiple of 16")
    rng = np.random.default_rng(0)
    strip = np.zeros((2 * MCU, width, 3), np.uint8)
    strip[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)  # a horizontal gradient, some noise in green
    strip[:, :, 1] = rng.integers(60, 90, (2 * MCU, width), dtype=np.uint8)
    strip[MCU:] = strip[:MCU]
    buffer = io.BytesIO()
    Image.fromarray(strip).save(buffer, "JPEG", quality=80, subsampling="4:2:0", restart_marker_rows=1)
    data = buffer.getvalue()
    header_end = _scan_start(data)
    rst = data.index(b"\xff\xd0", header_end)
    row = data[header_end:rst]
    header = bytearray(data[:header_end])
    sof = next(i for i in range(2, len(header) - 1) if header[i] == 0xFF and header[i + 1] in (0xC0, 0xC1))
    struct.pack_into(">H", header, sof + 5, height)
    with open(path, "wb") as out:
        out.write(header)
        rows = height // MCU
        for index in range(rows):
            out.write(row)
            if index < rows - 1:
                out.write(bytes((0xFF, 0xD0 + index % 8)))
        out.write(b"\xff\xd9")
    return path


def _scan_start(data: bytes) -> int:
    """Where the entropy-coded data of the first scan begins."""
    i = 2
    while data[i + 1] != 0xDA:
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]


CHILD = """
import resource, sys
from tagger.decode import decode
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = open(sys.argv[1], "rb").read()
pixels, _ = decode(data, (224, 224))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after, len(data), pixels.shape)
"""


def peak(path: Path) -> tuple[int, int, int]:
    """Peak RSS (KiB) of a fresh process after its imports and after decoding ``path``, and the file's size."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    before, after, size = map(int, out.stdout.split()[:3])
    return before, after, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="where to write the JPEGs (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results = {}
        for name, (width, height) in {"100 Mpx": (10240, 9792), "1 Gpx": (32768, 30720)}.items():
            path = big_jpeg(folder / f"{width}x{height}.jpg", width, height)
            before, after, size = peak(path)
            results[name] = after - before
            print(f"{name} ({width}x{height}, {width * height / 1e6:,.0f} Mpx, file {size / 2**20:,.1f} MiB): "
                  f"peak RSS {after / 1024:,.0f} MiB, {(after - before) / 1024:,.0f} MiB above the imports "
                  f"(the full image as RGB: {width * height * 3 / 2**20:,.0f} MiB)")
        print(f"1 Gpx / 100 Mpx peak above the imports: {results['1 Gpx'] / max(results['100 Mpx'], 1):.2f}x "
              f"for {32768 * 30720 / (10240 * 9792):.1f}x the pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
