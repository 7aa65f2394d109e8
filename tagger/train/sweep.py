"""The frozen phase: choose the head's regularization on held-out predictions, then fit it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tagger._tf import keras
from tagger.camera import SIZE as CAMERA_SIZE
from tagger.metrics import evaluate_predictions
from tagger.train.heads import fit_head, head_input, head_output, tag_combinations


@dataclass
class FrozenFeatures:
    """The pooled features the frozen phase fits on and judges by; ``folds``: each training row's fold.

    ``refit_with`` (features, labels): photos that join the training ones
    for the head finally kept (usually the validation photos).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    folds: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    refit_with: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class HeadSweep:
    """The settings the sweep tries (each ``C`` with each class balance) and the head's kind."""

    c_values: Sequence[float]
    balance_values: Sequence[float] = (1.0,)
    label_sets: bool = False
    camera: bool = False
    single_label: bool = False

    @property
    def second_figure(self) -> str:
        """What is judged beside macro-F1: accuracy of the top class, or exact match of the tag sets."""
        return "accuracy" if self.single_label else "exact_match"


def fit_frozen_head(model: keras.Model, data: FrozenFeatures, head: HeadSweep,
                    log: Callable[[str], object]) -> tuple[dict, dict, tuple]:
    """Set ``standardize`` and ``tags`` to the best exact head of the sweep over ``C`` and class balance.

    With ``head.camera`` the last ``tagger.camera.SIZE`` columns of the features
    are the camera's evidence: standardized apart (``camera_standardize``)
    and weighted by ``CAMERA_WEIGHT``, as the model does.

    The settings are judged on every held-out prediction outside the test
    split: the training photos' out-of-fold predictions of a grouped
    cross-validation (``data.folds`` holds each row's fold) together with the
    validation photos.  One validation split of ~120 photos alone is too
    noisy a judge: a photo or two of a rare tag decide it.

    Independent tags: first, how many tags reach their majority baseline's
    accuracy (class balancing buys recall with false positives, and a tag
    below its baseline is worse than no tagger); then the mean of macro-F1
    and exact match, the two figures TERC judges a tagger by.  With
    ``label_sets`` each head ends in the marginals over the tag combinations
    of the photos it was fit on.  ``head.single_label``: a softmax head, judged by
    the mean of macro-F1 and accuracy (of the top class), so that neither the
    rare classes nor the dominant one is given up.

    ``data.refit_with`` (features, labels), usually the validation photos, joins
    the training photos for the head finally kept: once the settings are
    chosen they have nothing left to judge, and more photos help (in grouped
    cross-validation of the ISS photos, fitting on 80% instead of 60% of them
    gains about 0.02 in both macro-F1 and exact match).

    Returns the chosen settings (``C``, ``balance``), the sweep, and the
    held-out (labels, probabilities) with them, on which thresholds can be
    calibrated.
    """
    mean, variance = data.x_train.mean(axis=0), data.x_train.var(axis=0)
    z_train, z_val = (head_input(x, mean, variance, head.camera) for x in (data.x_train, data.x_val))
    sweep, best = {}, None
    for c in head.c_values:
        for balance in head.balance_values:
            on_val = _held_out_probabilities(z_train, data.y_train, z_val, (c, balance), head)
            y_held, held = _with_out_of_fold(data, z_train, on_val, (c, balance), head)
            held_out, validation = _judge(y_held, held, head), _judge(data.y_val, on_val, head)
            key = f"{c:g}" if len(head.balance_values) == 1 else f"C={c:g}, balance={balance:g}"
            sweep[key] = _sweep_entry(held_out, validation, head)
            log(f"head {key}: held out, "
                + ("" if head.single_label else f"{held_out[0]}/{data.y_train.shape[1]} tags at or above baseline, ")
                + f"macro-F1 {held_out[2]:.3f}, {head.second_figure.replace('_', ' ')} {held_out[3]:.3f} "
                  f"(validation alone {validation[2]:.3f}, {validation[3]:.3f})")
            if best is None or held_out > best[0]:
                best = (held_out, {"C": c, "balance": balance}, (y_held, held))
    assert best is not None, "the sweep tries at least one C"
    _set_head(model, data, best[1], head)
    return best[1], sweep, best[2]


def _held_out_probabilities(z_fit: np.ndarray, y_fit: np.ndarray, z_held: np.ndarray, setting: tuple[float, float],
                            head: HeadSweep) -> np.ndarray:
    """What a head fit on ``z_fit`` with ``setting`` (C, balance) gives for ``z_held``."""
    kernel, bias = fit_head(z_fit, y_fit, *setting, head.single_label)
    return head_output(z_held @ kernel + bias, tag_combinations(y_fit) if head.label_sets else None, head.single_label)


def _with_out_of_fold(data: FrozenFeatures, z_train: np.ndarray, on_val: np.ndarray, setting: tuple[float, float],
                      head: HeadSweep) -> tuple[np.ndarray, np.ndarray]:
    """The validation photos' labels and predictions, then the training photos' out-of-fold ones."""
    fold_ids = np.unique(data.folds)
    if len(fold_ids) <= 1:  # a single training sequence has no folds to hold out
        return data.y_val, on_val
    out_of_fold = np.zeros(data.y_train.shape, "float32")
    for fold in fold_ids:
        rows = data.folds != fold
        out_of_fold[~rows] = _held_out_probabilities(z_train[rows], data.y_train[rows], z_train[~rows], setting, head)
    return np.concatenate([data.y_val, data.y_train]), np.concatenate([on_val, out_of_fold])


def _judge(y: np.ndarray, scores: np.ndarray, head: HeadSweep) -> tuple:
    """(tags at or above baseline, score, macro-F1, second figure): compared as a tuple, first to last."""
    if head.single_label:
        accuracy, f1 = single_label_scores(y, scores)
        return 0, (f1 + accuracy) / 2, f1, accuracy
    tags = [str(j) for j in range(y.shape[1])]
    overall = evaluate_predictions(y, scores, np.full(len(tags), 0.5), tags)["overall"]
    return (overall["tags_at_or_above_baseline"], (overall["macro_f1"] + overall["exact_match"]) / 2,
            overall["macro_f1"], overall["exact_match"])


def _sweep_entry(held_out: tuple, validation: tuple, head: HeadSweep) -> dict:
    """One setting's line of the card's sweep."""
    entry = {"held_out": dict(zip(("tags_at_or_above_baseline", "score", "macro_f1", head.second_figure),
                                  map(_rounded, held_out), strict=False)),
             "validation": dict(zip(("macro_f1", head.second_figure), map(_rounded, validation[2:]), strict=False))}
    if head.single_label:
        del entry["held_out"]["tags_at_or_above_baseline"]
    return entry


def _set_head(model: keras.Model, data: FrozenFeatures, chosen: dict, head: HeadSweep) -> None:
    """Fit the head kept, with the chosen settings, on the photos fit (and ``refit_with``), into the model."""
    x_fit, y_fit = (data.x_train, data.y_train) if data.refit_with is None else (
        np.concatenate([data.x_train, data.refit_with[0]]), np.concatenate([data.y_train, data.refit_with[1]]))
    mean, variance = x_fit.mean(axis=0), x_fit.var(axis=0)
    kernel, bias = fit_head(head_input(x_fit, mean, variance, head.camera), y_fit, chosen["C"], chosen["balance"],
                            head.single_label)
    image = len(mean) - CAMERA_SIZE if head.camera else len(mean)
    model.get_layer("standardize").set_weights([mean[:image], variance[:image]])
    if head.camera:
        model.get_layer("camera_standardize").set_weights([mean[image:], variance[image:]])
    model.get_layer("tags").set_weights([kernel.astype("float32"), bias.astype("float32")])


def single_label_scores(y: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """Accuracy and macro-F1 (over the classes present) of the top class."""
    truth, guess = np.asarray(y).argmax(axis=1), np.asarray(probabilities).argmax(axis=1)
    f1 = [2 * np.sum((truth == k) & (guess == k)) / (np.sum(truth == k) + np.sum(guess == k))
          for k in np.unique(truth)]
    return float(np.mean(truth == guess)), float(np.mean(f1))


def _rounded(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value
