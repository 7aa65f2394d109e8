"""Which photos should a person review first?  The review page's order against a random pick.

The order's goal is that a reviewer's looks are not spent on photos the
model got right: of the first N photos it shows, the share that needs a
correction should be at least :data:`GOAL` times that of N random photos.
(Issue 13 found that it does not make the retrained model better than
random picks; the macro-F1 columns below keep that measured.)

Simulates the loop on the shared ISS photos.  For each seed, the photos are
split by sequence (grouped, so frames of one pass stay together) into a
held-out fifth (never reviewed, only scored) and a pool; a model is fit on
``--start`` random photos of the pool, as if they were all TERC had tagged.
It predicts the rest of the pool, and a person "reviews" N of them (their
true tags stand for the person's answers), chosen

* by the product's order (``tagger.review.order.review_order``, what
  ``terc-tag review`` shows first: the closeness of a tag's probability to
  its threshold, weighted by the tag's rarity, spread over the photos by
  their similarity codes; the codes are fit on the start photos, as the
  bundle's would be),
* or at random.

A reviewed photo "needs a correction" when the model's tags for it differ
from its true tags.  Unless ``--no-refit``, the head is also refit on the
start photos plus the N reviewed ones (the training recipe's frozen head:
standardized GeM features, class-balanced exact logistic regression, each
photo and its mirror image), and macro-F1 on the held-out photos is reported
for each N, averaged over the seeds.

    python benchmarks/review_loop.py ../shared/data/iss-terc/images \\
        --weights ../shared/weights/resnet50_imagenet_msra_conv1-conv4.npz \\
        --first-seed 15 --seeds 30 --png docs/review-loop.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from head_cv import fold_assignments, labelled_photos, pooled_features

import tagger
from tagger.metrics import evaluate_predictions
from tagger.review.order import review_order
from tagger.similar.codes import encode, fit_learned, scene_ids
from tagger.state import Record
from tagger.train import fit_head, head_input, head_output, standardize

THRESHOLD = 0.5
GOAL = 1.3  # the order's first photos need a correction at least this much more often than random ones


def fit_and_predict(x: np.ndarray, y: np.ndarray, fit: np.ndarray, predict: np.ndarray, c: float) -> np.ndarray:
    """Tag probabilities for the ``predict`` photos from a head fit on the ``fit`` photos (all their views)."""
    views = len(x)
    x_fit = x[:, fit].reshape(-1, x.shape[-1])
    mean, variance = x_fit.mean(axis=0), x_fit.var(axis=0)
    kernel, bias = fit_head(head_input(x_fit, mean, variance, False), np.tile(y[fit], (views, 1)), c)
    return head_output(head_input(x[0, predict], mean, variance, False) @ kernel + bias)


def start_codes(x: np.ndarray, y: np.ndarray, scenes: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Packed similarity codes of every photo, from the learned code map fit on the ``start`` photos (all views)."""
    x_fit = x[:, start].reshape(-1, x.shape[-1])
    mean, variance = x_fit.mean(axis=0), x_fit.var(axis=0)
    views = len(x)
    code_map = fit_learned(standardize(x_fit, mean, variance), np.tile(y[start], (views, 1)),
                           np.tile(scenes[start], views))
    return encode(standardize(x[0], mean, variance), *code_map)


def product_pick(names: list[str], probabilities: np.ndarray, codes: np.ndarray, count: int) -> list[int]:
    """The first ``count`` photos of what ``terc-tag review`` would show, as positions in ``names``."""
    tags = tagger.TERC_TAGS
    records = [Record(name, 0, 0, "", "tagged", dict(zip(tags, map(float, p), strict=False)),
                      [t for t, v in zip(tags, p, strict=False) if v >= THRESHOLD], None,
                      code=code.tobytes(), code_key="start")
               for name, p, code in zip(names, probabilities, codes.astype("<u8"), strict=False)]
    position = {name: i for i, name in enumerate(names)}
    order = review_order(records, dict.fromkeys(tags, THRESHOLD), code_key="start", spread_first=count)
    return [position[r.path] for r in order[:count]]


def macro_f1(y: np.ndarray, probabilities: np.ndarray) -> float:
    result = evaluate_predictions(y, probabilities, np.full(y.shape[1], THRESHOLD), tagger.TERC_TAGS)
    return result["overall"]["macro_f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--features", type=Path, help="cache the pooled features in this .npz (made if missing)")
    parser.add_argument("--start", type=int, default=60, help="photos tagged before any review")
    parser.add_argument("--reviewed", type=int, nargs="+", default=[0, 25, 50, 100, 200])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="splits 0-14 were used to choose the order; 15 and up are fresh")
    parser.add_argument("--c", type=float, default=0.1)
    parser.add_argument("--png", type=Path, help="draw the curves here")
    parser.add_argument("--no-refit", action="store_true",
                        help="measure only the share of photos needing a correction (no macro-F1 refits; fast)")
    args = parser.parse_args()

    labels, names, pixels, y, _ = labelled_photos(args.images)
    scenes = scene_ids(names)
    if args.features and args.features.is_file():
        x = np.load(args.features)["x"]
    else:
        x = pooled_features(pixels, args.weights, "gem", views=2)
        if args.features:
            np.savez(args.features, x=x)
    results = {"review order": {n: [] for n in args.reviewed}, "random": {n: [] for n in args.reviewed}}
    wrong = {"review order": {n: [] for n in args.reviewed}, "random": {n: [] for n in args.reviewed}}
    assignments = fold_assignments(labels, names, args.first_seed + args.seeds)[args.first_seed:]
    for seed, folds in enumerate(assignments, args.first_seed):
        rng = np.random.default_rng(seed)
        held = np.flatnonzero(folds == folds.min())
        pool = rng.permutation(np.flatnonzero(folds != folds.min()))
        start, candidates = pool[:args.start], pool[args.start:]
        guesses = fit_and_predict(x, y, start, candidates, args.c)
        codes = start_codes(x, y, scenes, start)[candidates]
        needs_change = dict(zip(candidates, ((guesses >= THRESHOLD) != (y[candidates] > 0)).any(axis=1), strict=False))
        order = candidates[product_pick([names[i] for i in candidates], guesses, codes, max(args.reviewed))]
        shuffled = rng.permutation(candidates)
        for n in args.reviewed:
            for name, picked in (("review order", order[:n]), ("random", shuffled[:n])):
                fit = np.concatenate([start, picked])
                wrong[name][n].append(np.mean([needs_change[i] for i in picked]) if n else 0.0)
                if not args.no_refit:
                    results[name][n].append(macro_f1(y[held], fit_and_predict(x, y, fit, held, args.c)))
        print(f"seed {seed}: {len(held)} held out, {len(candidates)} to review", flush=True)

    print(f"\n{len(names)} photos; seeds {args.first_seed}-{args.first_seed + args.seeds - 1}; {args.start} tagged "
          "before review\n")
    print(f"Photos needing a correction among the first N shown (goal: the order at least {GOAL}x random; "
          "mean over seeds, ratio per split then averaged)\n")
    print("| photos shown | review order | random | ratio (same split) | splits at the goal |")
    print("|---:|---:|---:|---:|---:|")
    for n in (n for n in args.reviewed if n):
        ordered, random = np.array(wrong["review order"][n]), np.array(wrong["random"][n])
        ratio = ordered / np.maximum(random, 1e-9)
        print(f"| {n} | {ordered.mean():.0%} | {random.mean():.0%} | {ratio.mean():.2f} ± {ratio.std():.2f} "
              f"| {(ratio >= GOAL).sum()} of {len(ratio)} |")
    if args.no_refit:
        return
    print("\nMacro-F1 on the held-out fifth after refitting on the start and reviewed photos (mean ± sd over seeds)\n")
    print("| photos reviewed | review order | random | gain of review order (same split) | splits it wins |")
    print("|---:|---:|---:|---:|---:|")
    for n in args.reviewed:
        ordered, random = np.array(results["review order"][n]), np.array(results["random"][n])
        gain = ordered - random
        print(f"| {n} | {ordered.mean():.3f} ± {ordered.std():.3f} | {random.mean():.3f} ± {random.std():.3f} | "
              f"{gain.mean():+.3f} ± {gain.std():.3f} | {(gain > 0).sum()} of {len(gain)} |")
    if args.png:
        draw(results, args)


def draw(results: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.6), dpi=110)
    for name, style in (("review order", "o-"), ("random", "s--")):
        means = [np.mean(results[name][n]) for n in args.reviewed]
        spread = [np.std(results[name][n]) for n in args.reviewed]
        axes.errorbar(args.reviewed, means, yerr=spread, fmt=style, capsize=3, label=name)
    axes.set_xlabel(f"photos reviewed (after {args.start} tagged)")
    axes.set_ylabel("macro-F1, held-out photos")
    axes.set_title("Learning from reviews: which photos to check first")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(args.png)
    print(f"curve: {args.png}")


if __name__ == "__main__":
    main()
