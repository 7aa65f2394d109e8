"""Grouped cross-validation of a single-label archive's recipe: per-class figures beside the majority baseline.

The shipped bundles are measured on one test split; this measures the same
recipe on every image, each predicted by a head fit without its group
(HiRISE: its source observation, so a fold never sees a crop of a test
observation; EuroSAT: each patch alone, its convention).  The head is the
one ``terc-tag train`` fits (standardized GeM features of the frozen
backbone, exact softmax regression on every dihedral view of the images
fit, each class weighed by ``(n / (k * count)) ** balance``); the prediction
is the product's, on the image as it is (view 0).

    python benchmarks/archive_cv.py ../shared/data/hirise-v3/images \\
        --labels ../shared/data/hirise-v3/labels.txt --group-gap 100000 --views 8 --c 0.01 --balance 0.5 \\
        --weights ../shared/weights/resnet50_imagenet_msra_conv1-conv4.npz
    python benchmarks/archive_cv.py ../shared/data/eurosat-rgb --folder-labels --input-size 128 --views 4 \\
        --c 0.01 --balance 0 --weights ../shared/weights/resnet50_imagenet_msra_conv1-conv4.npz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tagger.discover import discover
from tagger.labels import labels_from_folders, match_labels, read_labels_file
from tagger.metrics import evaluate_classes
from tagger.splits import group_folds, sequence_groups
from tagger.train.heads import fit_head, head_output, standardize


def pooled_features(root: Path, names: list[str], size: int, views: int, weights: str) -> np.ndarray:
    """(views, images, features): the pooled backbone features ``train`` caches, for every view."""
    from tagger._tf import keras
    from tagger.model import build_model
    from tagger.train import VIEWS, initial_weights, pretrained_feature_layer, read_photos

    model = build_model(2, size, pretrained_feature_layer(weights))
    initial_weights(model, weights)
    extractor = keras.Model(model.inputs[0], model.get_layer("pool").output)
    kept, pixels, _ = read_photos(root, names, size, print)
    if len(kept) != len(names):
        raise SystemExit("some images could not be read")
    return np.stack([extractor.predict(np.stack([VIEWS[v](a) for a in pixels]).astype("float32"), batch_size=32,
                                       verbose=0) for v in range(views)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("--labels", type=Path, help="a 'file class_id' list with classmap.csv beside it")
    parser.add_argument("--folder-labels", action="store_true")
    parser.add_argument("--group-gap", type=int, help="group names as train --sequence-gap does (default: "
                                                      "every image its own group)")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--c", type=float, default=0.01)
    parser.add_argument("--balance", type=float, default=0.5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--features", type=Path, help="cache the features here (and reuse them)")
    args = parser.parse_args()

    photos = discover(args.images).photos
    if args.folder_labels:
        labels, vocabulary = labels_from_folders(photos)
    else:
        file_labels, vocabulary = read_labels_file(args.labels)
        labels = match_labels(photos, file_labels)
    names = sorted(str(p) for p, tags in labels.items() if len(tags) == 1)
    y = np.array([[tag in labels[Path(n)] for tag in vocabulary] for n in names], dtype="float32")
    started = time.perf_counter()
    if args.features and args.features.is_file():
        x = np.load(args.features)["x"]
    else:
        x = pooled_features(args.images, names, args.input_size, args.views, args.weights)
        if args.features:
            np.savez(args.features, x=x)
    print(f"features: {x.shape[0]} views of {x.shape[1]} images in {time.perf_counter() - started:.0f} s")
    groups = sequence_groups(names, args.group_gap) if args.group_gap is not None else {n: n for n in names}
    fold_of = group_folds({n: [vocabulary[int(np.argmax(row))]] for n, row in zip(names, y, strict=False)},
                          groups, args.folds)
    folds = np.array([fold_of[n] for n in names])
    probabilities = np.zeros((x.shape[0], *y.shape), "float32")  # each view's prediction
    for fold in range(args.folds):
        fit, held = folds != fold, folds == fold
        x_fit = x[:, fit].reshape(-1, x.shape[-1])
        mean, variance = x_fit.mean(axis=0), x_fit.var(axis=0)
        kernel, bias = fit_head(standardize(x_fit, mean, variance), np.tile(y[fit], (x.shape[0], 1)), args.c,
                                args.balance, single_label=True)
        probabilities[:, held] = head_output(standardize(x[:, held].reshape(-1, x.shape[-1]), mean, variance)
                                             @ kernel + bias, single_label=True).reshape(x.shape[0], -1, y.shape[1])
    averaged = evaluate_classes(y, probabilities.mean(axis=0), np.zeros(len(vocabulary)), vocabulary)["overall"]
    report = evaluate_classes(y, probabilities[0], np.zeros(len(vocabulary)), vocabulary)
    o = report["overall"]
    print(f"\n{len(names)} images, {len(set(groups.values()))} groups, {args.folds} grouped folds; C={args.c:g}, "
          f"balance={args.balance:g}, {x.shape[0]} views fit, input {args.input_size}px\n")
    print(f"accuracy {o['accuracy']:.3f} (baseline {o['baseline_accuracy']:.3f}: always {o['baseline_class']}); "
          f"macro-F1 {o['macro_f1']:.3f} (baseline {o['baseline_macro_f1']:.3f})")
    print(f"(the mean of all {x.shape[0]} views' predictions, which the product does not do: accuracy "
          f"{averaged['accuracy']:.3f}, macro-F1 {averaged['macro_f1']:.3f})\n")
    print("| class | images | precision | recall | F1 | baseline F1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for tag, m in report["tags"].items():
        print(f"| {tag} | {m['support']} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
              f"{m['baseline_f1']:.3f} |")


if __name__ == "__main__":
    main()
