"""Which 64-bit codes find similar photos: grouped cross-validation over the shared ISS photos (issue #12).

    python benchmarks/codes_cv.py ../shared/data/iss-terc/images --weights ../shared/weights/resnet50_imagenet_msra_conv1-conv4.npz [--seeds 1]

Each photo of a held-out fold (5 folds grouped by photo sequence) queries
all the other photos; whatever is learned is fit on the other 4 folds only,
so a query's burst mates are scenes the codes never saw.  Two figures per
recipe, the two goals of issue #12:

* mAP@64, a result relevant when it shares a TERC tag with the query;
* burst@5: of the queries with a frame of the same burst in the archive
  (same mission, frame number within 20), the share with one among the 5
  nearest.

Recipes: cosine on the float features (GeM-pooled conv4, standardized); 64-bit
PCA-ITQ; codes from the out-of-fold tag decisions (each bit repeated);
a linear map to 64 bits learned on pairwise targets (tag Jaccard, bursts
nearest, optionally the features' own cosine) with quantization, bit-balance
and decorrelation terms, as in the MIRS-style hashing literature.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from head_cv import cross_validate, fold_assignments, labelled_photos, pooled_features

from tagger._tf import tf
from tagger.splits import sequence_groups
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


def hamming(bits: np.ndarray) -> np.ndarray:
    bits = bits.astype(np.int8)
    return (bits[:, None, :] != bits[None, :, :]).sum(-1)


def pca_itq(z_fit: np.ndarray, z: np.ndarray, bits: int = BITS, iterations: int = 50) -> np.ndarray:
    """Gong and Lazebnik's iterative quantization on the top principal components."""
    mean = z_fit.mean(0)
    projection = np.linalg.svd(z_fit - mean, full_matrices=False)[2][:bits].T
    v = (z_fit - mean) @ projection
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(bits, bits)))[0]
    for _ in range(iterations):
        u, _, vt = np.linalg.svd(np.sign(v @ rotation).T @ v)
        rotation = (u @ vt).T
    return (z - mean) @ projection @ rotation > 0


def learned(z_fit, y_fit, groups_fit, z, tag_weight=0.5, burst=0.9, visual=0.0, steps=300) -> np.ndarray:
    """Bits of tanh(zW + b), W fit so that code inner products match pairwise targets."""
    inter = y_fit @ y_fit.T
    union = y_fit.sum(1)[:, None] + y_fit.sum(1)[None, :] - inter
    target = tag_weight * (2 * inter / np.maximum(union, 1) - 1)
    if visual:
        unit = z_fit / np.linalg.norm(z_fit, axis=1, keepdims=True)
        target = target + visual * unit @ unit.T
    target = tf.constant(np.where(groups_fit[:, None] == groups_fit[None, :], burst, target), tf.float32)
    x = tf.constant(z_fit, tf.float32)
    rng = np.random.default_rng(0)
    w = tf.Variable(rng.normal(0, z_fit.shape[1] ** -0.5, (z_fit.shape[1], BITS)).astype("float32"))
    b = tf.Variable(np.zeros(BITS, "float32"))
    optimizer = tf.keras.optimizers.Adam(0.01)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            u = tf.tanh(x @ w + b)
            loss = (tf.reduce_mean((u @ tf.transpose(u) / BITS - target) ** 2)
                    + 0.1 * tf.reduce_mean((tf.abs(u) - 1) ** 2)  # quantization
                    + tf.reduce_mean(tf.reduce_mean(u, 0) ** 2)  # each bit balanced
                    + tf.reduce_mean((tf.transpose(u) @ u / len(z_fit) - tf.eye(BITS)) ** 2)  # decorrelated
                    + 1e-4 * tf.reduce_mean(w ** 2))
        optimizer.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
    return z @ w.numpy() + b.numpy() > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--seeds", type=int, default=1, help="fold assignments to average over")
    args = parser.parse_args()
    labels, names, pixels, y = labelled_photos(args.images)
    x = pooled_features(pixels, args.weights, "gem", views=2)  # the photo and its mirror
    relevant, mates = (y @ y.T) > 0, burst_mates(names)
    np.fill_diagonal(relevant, False)
    groups = sequence_groups(names, 20)
    group_id = np.unique([groups[n] for n in names], return_inverse=True)[1]
    recipes = {"float features, cosine": None, "PCA-ITQ": None, "tag decisions (out of fold)": None,
               "learned: tags + bursts": {}, "learned: tags + bursts + feature cosine": {"visual": 0.5}}
    scores = {name: [] for name in recipes}
    for folds in fold_assignments(labels, names, args.seeds):
        tags_out_of_fold = cross_validate(x, y, folds, 1.0, True) >= 0.5
        for fold in np.unique(folds):
            fit, queries = folds != fold, np.flatnonzero(folds == fold)
            x_fit = x[:, fit].reshape(-1, x.shape[-1])
            mean, variance = x_fit.mean(0), x_fit.var(0)
            z_fit, z = standardize(x_fit, mean, variance), standardize(x[0], mean, variance)
            for name, options in recipes.items():
                if name.startswith("float"):
                    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
                    distance = -(unit @ unit.T)
                elif name.startswith("PCA"):
                    distance = hamming(pca_itq(z_fit, z))
                elif name.startswith("tag"):
                    distance = hamming(np.repeat(tags_out_of_fold, BITS // y.shape[1], axis=1))
                else:
                    distance = hamming(learned(z_fit, np.tile(y[fit], (2, 1)), np.tile(group_id[fit], 2), z,
                                               **options))
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
