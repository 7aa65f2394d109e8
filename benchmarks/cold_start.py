"""Cold start: what a cron run costs with 1, 10 and 1,000 new photos, before and after tagging without TensorFlow.

    python benchmarks/cold_start.py [--sizes 1,10,1000] [--before e25103b] [--source ../shared/data/iss-fullres]

Each run is the real command line in a fresh process, as cron starts it,
timed (wall) and measured (peak RSS of that process, from ``wait4``), with
the default model, for three set-ups in this one run:

* ``before``: terc-tag as of git revision ``--before`` (the landed main
  without this change), default backend: it imports TensorFlow, builds the
  Keras model and converts it to OpenVINO at every start;
* ``tf``: this tree with ``--backend tf``, the TensorFlow reference;
* ``after``: this tree, default backend, with TensorFlow and Keras made
  unimportable (``tests/no_tensorflow``).

Per set-up: N photos into an empty OUTPUT for each size, and one new photo
arriving in the 10-photo archive (the usual cron run).  Photos are hard links
to the full-size ISS photos of ``--source`` under distinct names.  The last
lines say whether each set-up gave the same tags as ``tf`` (predictions.csv).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import DEFAULT_SOURCE, many_photos

ROOT = Path(__file__).resolve().parents[1]


def run(python_path: list[Path], *args) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB and stderr of ``terc-tag ARGS`` in a fresh process.

    It starts in the temporary folder: ``python -m`` puts the working folder first on the path, which
    must not shadow the code under test.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, python_path))}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "tagger", *map(str, args), "--quiet"], env=env,
                               cwd=tempfile.gettempdir(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"terc-tag {' '.join(map(str, args))} failed:\n{stderr}")
    return wall, usage.ru_maxrss / 1024, stderr


def tags(output: Path) -> dict[str, str]:
    with open(output / "predictions.csv", newline="", encoding="utf-8") as file:
        return {row["file"]: row["tags"] for row in csv.DictReader(file)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,1000", help="photos per fresh run (comma-separated)")
    parser.add_argument("--before", default="e25103b", help="git revision of the 'before' code")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        work = Path(tmp)
        before = work / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "tagger", "models"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        setups = {
            "before": ([before], []),
            "tf": ([ROOT], ["--backend", "tf"]),
            "after": ([ROOT / "tests" / "no_tensorflow", ROOT], []),
        }
        photos = many_photos(work / "all", max(sizes + [11]), args.source)
        rows, outputs = [], {}
        for name, (path, options) in setups.items():
            for size in sizes:
                folder = work / name / f"in-{size}"
                folder.mkdir(parents=True)
                for photo in photos[:size]:
                    os.link(photo, folder / photo.name)
                out = work / name / f"out-{size}"
                wall, rss, _ = run(path, "tag", folder, out, *options)
                rows.append((name, f"{size} new, empty OUTPUT", wall, rss))
                outputs[name, size] = out
                if size == 10:
                    os.link(photos[10], folder / photos[10].name)
                    wall, rss, _ = run(path, "tag", folder, out, *options)
                    rows.append((name, "1 new in a 10-photo archive", wall, rss))
            print(f"{name} done", file=sys.stderr)
        agreement = {}
        for name in ("before", "after"):
            pairs = [(tags(outputs[name, s]), tags(outputs["tf", s])) for s in sizes]
            agreement[name] = (sum(mine[p] == theirs.get(p) for mine, theirs in pairs for p in mine),
                               sum(len(theirs) for _, theirs in pairs))

    print(f"{len(photos)} full-size photos from {args.source}; before = git {args.before}\n")
    print("| set-up | run | wall s | peak RSS MiB |")
    print("|---|---|---:|---:|")
    for name, what, wall, rss in rows:
        print(f"| {name} | {what} | {wall:.2f} | {rss:.0f} |")
    print("\n| run | wall before / after | RSS before / after | wall tf / after | RSS tf / after |")
    print("|---|---:|---:|---:|---:|")
    measured = {(name, what): (wall, rss) for name, what, wall, rss in rows}
    for what in dict.fromkeys(what for _, what, _, _ in rows):
        (bw, br), (tw, tr), (aw, ar) = (measured[s, what] for s in setups)
        print(f"| {what} | {bw / aw:.1f}x | {br / ar:.1f}x | {tw / aw:.1f}x | {tr / ar:.1f}x |")
    print()
    for name, (same, total) in agreement.items():
        print(f"{name}: the same tags as tf on {same} of {total} photos")


if __name__ == "__main__":
    main()
