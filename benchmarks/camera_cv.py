"""Does the camera's evidence help? Grouped cross-validation with and without EXIF (issue #15).

    python benchmarks/camera_cv.py ../shared/data/iss-terc/images \\
        --weights ../shared/weights/resnet50_imagenet_msra_conv1-conv4.npz [--seeds 3] [--c 1]

Every labelled photo, 5 folds grouped by sequence, each head fit on the other
4 folds and their mirror images, as ``train`` fits the default model (GeM,
label sets).  Rows: today's pixel-only recipe; ``train --camera`` (EXIF
beside the features, with EXIF dropout) on held-out photos with their EXIF;
and the same model on the same photos stripped of EXIF (what an export or a
web copy brings).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from head_cv import cv_cells, fold_assignments, labelled_photos, pooled_features

from tagger.camera import MISSING


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--c", type=float, default=1.0, help="the head's C (the default model's)")
    args = parser.parse_args()
    labels, names, pixels, y, cameras = labelled_photos(args.images)
    x = pooled_features(pixels, args.weights, "gem", views=2)
    folds = fold_assignments(labels, names, args.seeds)
    stripped = np.tile(MISSING, (len(names), 1))
    print(f"{len(names)} photos, {int(cameras[:, 4:].any(axis=1).sum())} without some EXIF field; {args.seeds} x 5 "
          f"grouped folds, C = {args.c:g}\n")
    print("| model | held-out photos | macro-F1 | exact match | Volcano F1 | Inside ISS F1 | Cupola F1 | "
          "tags >= baseline |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    tags = ("Volcano", "Inside ISS", "Cupola")
    rows = [("pixels only (today's recipe)", "any", {}),
            ("`--camera`", "with EXIF", {"camera": cameras}),
            ("`--camera`", "EXIF stripped", {"camera": cameras, "held_camera": stripped})]
    for model, held, options in rows:
        print(f"| {model} | {held} | " + cv_cells(x, y, folds, args.c, True, tags=tags, **options), flush=True)


if __name__ == "__main__":
    main()
