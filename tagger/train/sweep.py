"""The frozen phase: choose the head's regularization on held-out predictions, then fit it."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tagger._tf import keras
from tagger.camera import SIZE as CAMERA_SIZE
from tagger.metrics import evaluate_predictions
from tagger.train.heads import fit_head, head_input, head_output, tag_combinations

def fit_frozen_head(model: keras.Model, x_train, y_train, folds, x_val, y_val, c_values: Sequence[float],
                    balance_values: Sequence[float], log, label_sets: bool = False, refit_with=None,
                    camera: bool = False, single_label: bool = False) -> tuple[dict, dict, tuple]:
    """Set ``standardize`` and ``tags`` to the best exact head of the sweep over ``C`` and class balance.

    With ``camera`` the last ``tagger.camera.SIZE`` columns of the features
    are the camera's evidence: standardized apart (``camera_standardize``)
    and weighted by ``CAMERA_WEIGHT``, as the model does.

    The settings are judged on every held-out prediction outside the test
    split: the training photos' out-of-fold predictions of a grouped
    cross-validation (``folds`` holds each row's fold) together with the
    validation photos.  One validation split of ~120 photos alone is too
    noisy a judge: a photo or two of a rare tag decide it.

    Independent tags: first, how many tags reach their majority baseline's
    accuracy (class balancing buys recall with false positives, and a tag
    below its baseline is worse than no tagger); then the mean of macro-F1
    and exact match, the two figures TERC judges a tagger by.  With
    ``label_sets`` each head ends in the marginals over the tag combinations
    of the photos it was fit on.  ``single_label``: a softmax head, judged by
    the mean of macro-F1 and accuracy (of the top class), so that neither the
    rare classes nor the dominant one is given up.

    ``refit_with`` (features, labels), usually the validation photos, joins
    the training photos for the head finally kept: once the settings are
    chosen they have nothing left to judge, and more photos help (in grouped
    cross-validation of the ISS photos, fitting on 80% instead of 60% of them
    gains about 0.02 in both macro-F1 and exact match).

    Returns the chosen settings (``C``, ``balance``), the sweep, and the
    held-out (labels, probabilities) with them, on which thresholds can be
    calibrated.
    """
    mean, variance = x_train.mean(axis=0), x_train.var(axis=0)
    z_train, z_val = (head_input(x, mean, variance, camera) for x in (x_train, x_val))
    tags = [str(j) for j in range(y_train.shape[1])]
    second = "accuracy" if single_label else "exact_match"

    def held_out_probabilities(rows, z_held, c, balance):
        kernel, bias = fit_head(z_train[rows], y_train[rows], c, balance, single_label)
        return head_output(z_held @ kernel + bias, tag_combinations(y_train[rows]) if label_sets else None,
                           single_label)

    def judge(y, scores):
        if single_label:
            accuracy, f1 = single_label_scores(y, scores)
            return 0, (f1 + accuracy) / 2, f1, accuracy
        overall = evaluate_predictions(y, scores, np.full(len(tags), 0.5), tags)["overall"]
        return (overall["tags_at_or_above_baseline"], (overall["macro_f1"] + overall["exact_match"]) / 2,
                overall["macro_f1"], overall["exact_match"])

    fold_ids = np.unique(folds)
    sweep, best = {}, None
    for c in c_values:
        for balance in balance_values:
            on_val = held_out_probabilities(slice(None), z_val, c, balance)
            y_held, held = [y_val], [on_val]
            if len(fold_ids) > 1:  # a single training sequence has no folds to hold out
                out_of_fold = np.zeros(y_train.shape, "float32")
                for fold in fold_ids:
                    out_of_fold[folds == fold] = held_out_probabilities(folds != fold, z_train[folds == fold], c,
                                                                        balance)
                y_held.append(y_train)
                held.append(out_of_fold)
            y_held, held = np.concatenate(y_held), np.concatenate(held)
            held_out, validation = judge(y_held, held), judge(y_val, on_val)
            key = f"{c:g}" if len(balance_values) == 1 else f"C={c:g}, balance={balance:g}"
            sweep[key] = {"held_out": dict(zip(("tags_at_or_above_baseline", "score", "macro_f1", second),
                                               map(_rounded, held_out))),
                          "validation": dict(zip(("macro_f1", second), map(_rounded, validation[2:])))}
            if single_label:
                del sweep[key]["held_out"]["tags_at_or_above_baseline"]
            log(f"head {key}: held out, "
                + ("" if single_label else f"{held_out[0]}/{len(tags)} tags at or above baseline, ")
                + f"macro-F1 {held_out[2]:.3f}, {second.replace('_', ' ')} {held_out[3]:.3f} "
                  f"(validation alone {validation[2]:.3f}, {validation[3]:.3f})")
            if best is None or held_out > best[0]:
                best = (held_out, {"C": c, "balance": balance}, (y_held, held))

    x_fit, y_fit = (x_train, y_train) if refit_with is None else (
        np.concatenate([x_train, refit_with[0]]), np.concatenate([y_train, refit_with[1]]))
    mean, variance = x_fit.mean(axis=0), x_fit.var(axis=0)
    kernel, bias = fit_head(head_input(x_fit, mean, variance, camera), y_fit, best[1]["C"], best[1]["balance"],
                            single_label)
    image = len(mean) - CAMERA_SIZE if camera else len(mean)
    model.get_layer("standardize").set_weights([mean[:image], variance[:image]])
    if camera:
        model.get_layer("camera_standardize").set_weights([mean[image:], variance[image:]])
    model.get_layer("tags").set_weights([kernel.astype("float32"), bias.astype("float32")])
    return best[1], sweep, best[2]


def single_label_scores(y: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """Accuracy and macro-F1 (over the classes present) of the top class."""
    truth, guess = np.asarray(y).argmax(axis=1), np.asarray(probabilities).argmax(axis=1)
    f1 = [2 * np.sum((truth == k) & (guess == k)) / (np.sum(truth == k) + np.sum(guess == k))
          for k in np.unique(truth)]
    return float(np.mean(truth == guess)), float(np.mean(f1))


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value
