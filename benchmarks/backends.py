"""Inference backends: speed against TensorFlow fp32, and whether they tag the same.

    python benchmarks/backends.py [--images ../shared/data/iss-terc/images]

For each backend, in this one run: model-only throughput at the given batch
size, and the share of (photo, tag) decisions at threshold 0.5 that agree with
TensorFlow fp32 over every photo in --images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import model_only

from tagger.backends import BACKENDS
from tagger.bundle import Bundle
from tagger.cli.common import default_model
from tagger.decode import batched, iter_decoded
from tagger.discover import discover
from tagger.sessions import load_session

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "iss-terc" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    sessions = {backend: load_session(Bundle(default_model(), backend)) for backend in BACKENDS}
    photos = discover(args.images).photos
    decoded = iter_decoded(args.images, photos, sessions["tf"].size)
    pixels = np.stack([d.pixels for d in decoded if d.pixels is not None])
    probabilities = {b: np.concatenate([s.predict(np.stack(chunk)) for chunk in batched(pixels, args.batch_size)])
                     for b, s in sessions.items()}
    reference = probabilities["tf"] >= 0.5
    speeds = {b: model_only(s, args.batch_size, batches=12) for b, s in sessions.items()}
    print(f"{len(pixels)} photos, batch {args.batch_size}")
    print("| backend | photos/s (model only) | vs tf | decisions agreeing with tf | max |p - p_tf| |")
    print("|---|---:|---:|---:|---:|")
    for b in BACKENDS:
        agree = np.mean((probabilities[b] >= 0.5) == reference)
        diff = np.abs(probabilities[b] - probabilities["tf"]).max()
        print(f"| {b} | {speeds[b]:.1f} | {speeds[b] / speeds['tf']:.2f}x | {agree:.4%} | {diff:.1e} |")


if __name__ == "__main__":
    main()
