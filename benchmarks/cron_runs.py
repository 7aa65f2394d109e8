"""What a cron run costs on a large archive: nothing new, and a few new photos.

    python benchmarks/cron_runs.py [--photos 10000] [--new 5] [--source ../shared/data/iss-terc/images]

Tags a folder of ``--photos`` photos once (hard links to the source's JPEGs,
so distinct files that cost no disk), then times the real command line, each
in a fresh process as cron starts it, and prints in this one run:

* a run with nothing new (median of 3): its wall time, that it printed
  nothing and exited 0, and that no file or folder of OUTPUT changed;
* ``--new`` photos arriving in that archive, against the same photos tagged
  into an empty OUTPUT: the ratio says how much of a run grows with the
  archive rather than with the new photos.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import many_photos

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "iss-terc" / "images"


def snapshot(folder: Path) -> dict[str, tuple]:
    return {str(p): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in [folder, *folder.rglob("*")]}


def timed_run(*args) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tagger", *map(str, args), "--quiet"], capture_output=True, text=True)
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10000, help="photos in the archive")
    parser.add_argument("--new", type=int, default=5, help="new photos arriving in the last run")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder of JPEGs to cycle through")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive, out = tmp / "incoming", tmp / "tagged"
        many_photos(archive, args.photos, args.source)
        seconds, done = timed_run(archive, out)
        assert done.returncode == 0, done.stderr
        print(f"first run: {args.photos} photos tagged in {seconds:.0f} s")

        before = snapshot(out)
        noop = []
        for _ in range(3):
            seconds, done = timed_run(archive, out)
            assert done.returncode == 0 and done.stdout == done.stderr == "", (done.stdout, done.stderr)
            noop.append(seconds)
        unchanged = snapshot(out) == before
        version, _ = timed_run("--version")
        print(f"nothing new, {args.photos} photos done: {statistics.median(noop):.2f} s median of 3 "
              f"({', '.join(f'{s:.2f}' for s in noop)}); silent, exit 0; OUTPUT unchanged: {unchanged}; "
              f"'terc-tag --version' alone: {version:.2f} s")

        arrivals, alone = tmp / "arrivals", tmp / "alone"
        for photo in many_photos(arrivals, args.new, args.source):
            (archive / f"new-{photo.name}").hardlink_to(photo)
        into_archive, done = timed_run(archive, out)
        assert done.returncode == 0, done.stderr
        into_empty, done = timed_run(arrivals, alone)
        assert done.returncode == 0, done.stderr
        print(f"{args.new} new photos: {into_archive:.2f} s into the {args.photos}-photo archive, {into_empty:.2f} s "
              f"into an empty OUTPUT (ratio {into_archive / into_empty:.2f})")


if __name__ == "__main__":
    main()
