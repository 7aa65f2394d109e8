"""The figures users care about, in one run: run it before resolving anything that touches tagging.

    python benchmarks/speed.py [--photos 400] [--small 40] [--backend B] [--source DIR]

On full-size ISS photos (4928x3280 JPEGs, hard links cycling through
``--source``), each ``terc-tag`` run a fresh process with the real command line:

* **marginal tagging speed**: ``--photos`` and ``--small`` new photos tagged
  into empty OUTPUTs; (photos - small) / (difference of their wall times), so
  start-up (imports, loading the model) cancels out;
* **the TensorFlow fp32 model-only ceiling**: ``predict`` alone on ready-made
  batches of 32 (no decoding, no I/O), and the ratio of the two, the goal
  of issue 29 (2x);
* **the no-op cron run**: the large folder again, nothing new (median of 3);
* **peak memory**: the largest resident set of the large run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import DEFAULT_SOURCE, many_photos, model_only


def run_cli(*args) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one ``terc-tag`` process; it must exit 0."""
    started = time.perf_counter()
    pid = os.spawnv(os.P_NOWAIT, sys.executable, [sys.executable, "-m", "tagger", *map(str, args), "--quiet"])
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"terc-tag {' '.join(map(str, args))} exited {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400, help="photos in the large run")
    parser.add_argument("--small", type=int, default=40, help="photos in the small run (start-up cancels out)")
    parser.add_argument("--backend", default=None, help="the tag command's --backend (default: its own)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder of full-size JPEGs")
    args = parser.parse_args()
    backend = ["--backend", args.backend] if args.backend else []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        many_photos(tmp / "small", args.small, args.source)
        many_photos(tmp / "large", args.photos, args.source)
        run_cli(tmp / "small", tmp / "warm-up", *backend)  # file cache, compiled bytecode: not start-up
        small_seconds, _ = run_cli(tmp / "small", tmp / "small-out", *backend)
        large_seconds, peak = run_cli(tmp / "large", tmp / "large-out", *backend)
        noop = [run_cli(tmp / "large", tmp / "large-out", *backend)[0] for _ in range(3)]

    from tagger.cli.common import default_model
    from tagger.model import TaggerSession

    ceiling = model_only(TaggerSession(default_model(), backend="tf"), 32, batches=max(3, args.photos // 64))
    marginal = (args.photos - args.small) / (large_seconds - small_seconds)
    print(f"{args.photos} and {args.small} full-size photos, backend {args.backend or 'default'}, "
          f"{os.cpu_count()} CPUs")
    print(f"tagging, marginal:        {marginal:6.1f} photos/s  ({large_seconds:.1f} s and {small_seconds:.1f} s)")
    print(f"TF fp32 model only:       {ceiling:6.1f} photos/s")
    print(f"ratio:                    {marginal / ceiling:6.2f}x  (goal 2x)")
    runs = ", ".join(f"{s:.2f}" for s in noop)
    print(f"no-op cron run:           {statistics.median(noop):6.2f} s    (median of {runs})")
    print(f"peak memory, large run:   {peak:6d} MiB")


if __name__ == "__main__":
    main()
