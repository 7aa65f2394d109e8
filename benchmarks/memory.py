"""Peak memory of ``terc-tag tag`` does not grow with the folder: 200 against 2,000 photos.

    python benchmarks/memory.py [--small 200] [--large 2000]

Each size runs in a fresh process (``python -m tagger``) on full-size ISS
photos; the peak resident set size of each is read from the kernel.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _photos import DEFAULT_SOURCE, many_photos  # noqa: E402

CHILD = """
import resource, sys
from tagger.cli import main
try:
    main([sys.argv[1], sys.argv[2], "--quiet"])
except SystemExit as exit:
    code = exit.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code)
"""


def peak_rss_mib(count: int, source: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        many_photos(Path(tmp) / "in", count, source)
        out = subprocess.run([sys.executable, "-c", CHILD, f"{tmp}/in", f"{tmp}/out"], capture_output=True,
                             text=True, check=True).stdout.split()
        if out[1] != "0":
            raise SystemExit(f"terc-tag exited {out[1]} on {count} photos")
        return int(out[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    small, large = peak_rss_mib(args.small, args.source), peak_rss_mib(args.large, args.source)
    print(f"peak RSS, {args.small:5d} photos: {small:7.0f} MiB")
    print(f"peak RSS, {args.large:5d} photos: {large:7.0f} MiB   (ratio {large / small:.2f} for "
          f"{args.large / args.small:.0f}x the photos)")


if __name__ == "__main__":
    main()
