"""Which 64-bit codes find similar photos: grouped cross-validation over the shared ISS photos (issue #12).

    python benchmarks/codes_cv.py ../shared/data/iss-terc/images \
        --weights ../shared/weights/resnet50_imagenet_msra_conv1-conv4.npz [--seeds 1]

Each photo of a held-out fold (5 folds grouped by photo sequence) queries
all the other photos; whatever is learned is fit on the other 4 folds only,
so a query's burst mates are scenes the codes never saw.  Two figures per
recipe, the two goals of issue #12:

* mAP@64, a result relevant when it shares a TERC tag with the query;
* burst@5: of the queries with a frame of the same burst in the archive
  (same mission, frame number within 20), the share with one among the 5
  nearest.

Recipes: cosine on the float features (GeM-pooled conv4, standardized); 64-bit
PCA-ITQ (``tagger.similar.codes.fit_itq``, the product's fallback without tags);
codes from the out-of-fold tag decisions (each bit repeated); and the
product's learned map (``tagger.similar.codes.fit_learned``: pairwise targets from tag
Jaccard and sequences, with quantization, bit-balance and decorrelation terms).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from head_cv import cross_validate, fold_assignments, labelled_photos, pooled_features

from tagger.hamming import pack
from tagger.similar.codes import encode, fit_itq, fit_learned, scene_ids
from tagger.train import standardize

BITS = 64
_FRAME = re.compile(r"^(.*?)(\d+)$")


def burst_mates(names: list[str], gap: int = 20) -> np.ndarray:
    """(n, n): same mission prefix and frame numbers at most ``gap`` apart."""
    parts = [_FRAME.match(Path(name).stem).groups() for name in names]
    prefix = np.array([p for p, _ in parts])
    frame = np.array([int(f) for _, f in parts])
    mates = (prefix[:, None] == prefix[None, :]) & (np.abs(frame[:, None] - frame[None, :]) <= gap)
    np.fill_diagonal(mates, False)
    return mates


def retrieval(distance: np.ndarray, queries: np.ndarray, relevant: np.ndarray, mates: np.ndarray):
    """mAP@64 over ``queries``, and burst@5 hits and how many queries had a mate."""
    aps, hits, with_mate = [], 0, 0
    for q in queries:
        row = distance[q].astype(float)
        row[q] = np.inf
        order = np.argsort(row, kind="stable")[:64]
        found = relevant[q, order]
        precision = np.cumsum(found) / np.arange(1, len(found) + 1)
        aps.append((precision * found).sum() / found.sum() if found.any() else 0.0)
        if mates[q].any():
            with_mate += 1
            hits += bool(mates[q, order[:5]].any())
    return float(np.mean(aps)), hits, with_mate


def hamming(words: np.ndarray) -> np.ndarray:
    """(n, n) Hamming distances between packed codes."""
    return np.bitwise_count(words[:, None, :] ^ words[None, :, :]).sum(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--seeds", type=int, default=1, help="fold assignments to average over")
    args = parser.parse_args()
    labels, names, pixels, y, _ = labelled_photos(args.images)
    x = pooled_features(pixels, args.weights, "gem", views=2)  # the photo and its mirror
    relevant, mates = (y @ y.T) > 0, burst_mates(names)
    np.fill_diagonal(relevant, False)
    scenes = scene_ids(names)
    recipes = ("float features, cosine", "PCA-ITQ", "tag decisions (out of fold)", "learned: tags + sequences")
    scores = {name: [] for name in recipes}
    for folds in fold_assignments(labels, names, args.seeds):
        tags_out_of_fold = cross_validate(x, y, folds, 1.0, True) >= 0.5
        for fold in np.unique(folds):
            fit, queries = folds != fold, np.flatnonzero(folds == fold)
            x_fit = x[:, fit].reshape(-1, x.shape[-1])
            mean, variance = x_fit.mean(0), x_fit.var(0)
            z_fit, z = standardize(x_fit, mean, variance), standardize(x[0], mean, variance)
            for name in recipes:
                if name.startswith("float"):
                    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
                    distance = -(unit @ unit.T)
                elif name.startswith("PCA"):
                    distance = hamming(encode(z, *fit_itq(z_fit, BITS)))
                elif name.startswith("tag"):
                    repeated = np.repeat(tags_out_of_fold, BITS // y.shape[1], axis=1)  # zero bits pad to 64
                    distance = hamming(pack(np.pad(repeated, ((0, 0), (0, BITS - repeated.shape[1])))))
                else:
                    distance = hamming(encode(z, *fit_learned(z_fit, np.tile(y[fit], (2, 1)),
                                                              np.tile(scenes[fit], 2), BITS)))
                scores[name].append(retrieval(distance, queries, relevant, mates))
    print(f"{len(names)} photos, {args.seeds} x 5 folds grouped by sequence, {BITS}-bit codes\n")
    print("| codes | mAP@64 (shares a tag) | burst@5 | queries with a burst mate |")
    print("|---|---:|---:|---:|")
    for name, rows in scores.items():
        rows = np.array(rows)
        print(f"| {name} | {rows[:, 0].mean():.3f} | {rows[:, 1].sum() / rows[:, 2].sum():.3f} | "
              f"{int(rows[:, 2].sum())} |")


if __name__ == "__main__":
    main()
