"""Peak memory of ``terc-tag tag`` does not grow with the folder: 200 against 2,000 photos.

    python benchmarks/memory.py [--small 200] [--large 2000]

Each size runs in a fresh process on full-size ISS photos; the peak resident
set size of each is read from the kernel, and the large run also samples its
RSS every second, to show whether memory climbs as the run goes on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import DEFAULT_SOURCE, many_photos

CHILD = """
import resource, sys, threading, time
from tagger.cli import main

samples, done = [], threading.Event()

def sample():  # resident memory once a second, to see whether it climbs during the run
    while not done.wait(1.0):
        samples.append(int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]))

threading.Thread(target=sample, daemon=True).start()
try:
    main([sys.argv[1], sys.argv[2], "--quiet"])
except SystemExit as exit:
    code = exit.code
done.set()
quarters = [max(samples[i * len(samples) // 4:(i + 1) * len(samples) // 4] or [0]) for i in range(4)]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code, *quarters)
"""


def peak_rss_mib(count: int, source: Path) -> tuple[float, list[float]]:
    """Peak RSS of a run on ``count`` photos, and the highest RSS in each quarter of the run (MiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        many_photos(Path(tmp) / "in", count, source)
        out = subprocess.run([sys.executable, "-c", CHILD, f"{tmp}/in", f"{tmp}/out"], capture_output=True,
                             text=True, check=True).stdout.split()
        if out[1] != "0":
            raise SystemExit(f"terc-tag exited {out[1]} on {count} photos")
        return int(out[0]) / 1024, [int(q) / 1024 for q in out[2:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    (small, _), (large, quarters) = peak_rss_mib(args.small, args.source), peak_rss_mib(args.large, args.source)
    print(f"peak RSS, {args.small:5d} photos: {small:7.0f} MiB")
    print(f"peak RSS, {args.large:5d} photos: {large:7.0f} MiB   (ratio {large / small:.2f} for "
          f"{args.large / args.small:.0f}x the photos)")
    print(f"highest RSS in each quarter of the {args.large}-photo run: "
          + ", ".join(f"{q:.0f}" for q in quarters) + " MiB")

if __name__ == "__main__":
    main()
