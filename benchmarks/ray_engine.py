"""The Ray engine's own cost, measured in one run beside the local engine on the same photos.

Tags ``--photos`` full-size ISS photos (hard links of the shared ones) with
the local engine, then with the Ray engine on a local Ray of this machine,
and prints each one's wall time, their ratio, the steady-state photos per
second (between the first and the last batch recorded), whether the tagged
photos are byte-identical, and how many photos per second the driver can
record in the state (the ceiling of any cluster: every outcome passes
through it).

    python benchmarks/ray_engine.py --photos 1000

Ray runs in a network namespace of its own (the script re-executes itself
under ``unshare``), as in the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import many_photos

from tagger.bundle import Bundle
from tagger.state import Record, State
from tagger.tagging import pipeline, ray_engine, stages

ROOT = Path(__file__).resolve().parents[1]


def timed_run(input_dir: Path, output_dir: Path, bundle: Bundle, engine, batch_size: int) -> dict:
    """Wall time, and the times at which each batch was recorded (both engines record through ``commit``)."""
    recorded = []
    commit = pipeline.commit

    def timed_commit(state, outcomes, summary):
        commit(state, outcomes, summary)
        recorded.append((time.perf_counter(), len(outcomes)))

    pipeline.commit = ray_engine.commit = timed_commit
    try:
        started = time.perf_counter()
        summary = pipeline.tag_folder(input_dir, output_dir, bundle, engine, batch_size=batch_size)
        wall = time.perf_counter() - started
    finally:
        pipeline.commit = ray_engine.commit = commit
    (first, _), (last, _) = recorded[0], recorded[-1]
    steady = sum(n for _, n in recorded[1:]) / (last - first) if last > first else float("nan")
    return {"wall": wall, "tagged": len(summary.tagged), "steady": steady, "first_batch": first - started}


def state_commit_rate(folder: Path, vocabulary: list[str], seconds: float = 3.0, batch: int = 32) -> float:
    """Photos per second that ``commit`` records into a state (synthetic outcomes, batches of ``batch``)."""
    state = State(folder)
    summary = stages.Summary(folder, folder, "", {})
    probabilities = dict.fromkeys(vocabulary, 0.25)
    done, started = 0, time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            outcomes = [stages.Outcome(f"photo{done + i:08d}.jpg", Record(
                f"photo{done + i:08d}.jpg", 1000, 1, "run", "tagged", probabilities, ["Night"], None,
                written=["Night"])) for i in range(batch)]
            stages.commit(state, outcomes, summary)
            done += batch
    finally:
        state.close()
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "terc-iss")
    parser.add_argument("--backend", default="openvino-bf16", help="as tag's --backend (its default)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if not os.environ.get("TERC_TAG_BENCHMARK_NAMESPACE"):
        command = " ".join([sys.executable, *map(str, sys.argv)])
        env = {**os.environ, "TERC_TAG_BENCHMARK_NAMESPACE": "1", "RAY_AUTH_MODE": "token"}
        sys.exit(subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount-proc", "bash", "-ec",
                                 f"ip link set lo up; exec {command}"], env=env).returncode)

    bundle = Bundle(args.model, args.backend)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        many_photos(scratch / "in", args.photos)
        rate = state_commit_rate(scratch / "state", bundle.vocabulary)
        local = timed_run(scratch / "in", scratch / "local", bundle, pipeline.LocalEngine(), args.batch_size)
        started = time.perf_counter()
        ray_engine.connect()
        start_up = time.perf_counter() - started
        on_ray = timed_run(scratch / "in", scratch / "ray", bundle, ray_engine.RayEngine(), args.batch_size)
        photos = sorted(p.relative_to(scratch / "local") for p in (scratch / "local").glob("*.jpg"))
        different = sum((scratch / "local" / p).read_bytes() != (scratch / "ray" / p).read_bytes() for p in photos)
        same_csv = ((scratch / "local" / "predictions.csv").read_bytes()
                    == (scratch / "ray" / "predictions.csv").read_bytes())
        shutil.rmtree(scratch / "local")
    print(f"{args.photos} full-size photos, {bundle.path.name}, backend {args.backend}, batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs\n")
    print("| engine | wall time | steady state | first batch recorded after |")
    print("|---|---:|---:|---:|")
    print(f"| local | {local['wall']:.1f} s | {local['steady']:.1f} photos/s | {local['first_batch']:.1f} s |")
    print(f"| ray (local Ray, started before: {start_up:.1f} s) | {on_ray['wall']:.1f} s | "
          f"{on_ray['steady']:.1f} photos/s | {on_ray['first_batch']:.1f} s |")
    print(f"\nRay engine / local engine, wall time: {on_ray['wall'] / local['wall']:.2f}x "
          f"({(on_ray['wall'] + start_up) / local['wall']:.2f}x counting Ray's start)")
    print(f"tagged photos byte-identical: {len(photos) - different} of {len(photos)}; predictions.csv identical: "
          f"{same_csv}")
    print(f"the driver records {rate:,.0f} photos/s into the state (batches of {args.batch_size})")


if __name__ == "__main__":
    main()
