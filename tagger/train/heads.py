"""The frozen phase's heads in numpy: what the model's head layers compute, and their exact fits.

A sigmoid head (one exact logistic regression per tag, ``fit_head``) for
tags that may come together, a softmax head (one multinomial logistic
regression, ``fit_softmax_head``) for single-label vocabularies.  Both read
standardized features, as the model's ``Standardize`` layer gives them.
"""

from __future__ import annotations

import numpy as np

from tagger.camera import SIZE as CAMERA_SIZE
from tagger.model import CAMERA_WEIGHT, LabelSetMarginals, Standardize
from tagger.train.logistic import fit_logistic, fit_softmax


def standardize(x: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """What the model's ``Standardize`` layer computes, in numpy."""
    return (x - mean) / np.sqrt(variance + Standardize.epsilon)


def head_input(x: np.ndarray, mean: np.ndarray, variance: np.ndarray, camera: bool) -> np.ndarray:
    """What the tag head reads: standardized features, the last columns through ``CameraEvidence`` with ``camera``."""
    z = standardize(x, mean, variance)
    if camera:
        fields = CAMERA_SIZE // 2
        z[:, -CAMERA_SIZE:-fields] *= 1 - x[:, -fields:]  # a missing value at the mean
        z[:, -CAMERA_SIZE:] *= CAMERA_WEIGHT
    return z


def fit_head(z: np.ndarray, y: np.ndarray, c: float, balance: float = 1.0,
             single_label: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The head's kernel (features, tags) and bias (tags,), fit exactly on standardized features.

    Independent tags: one logistic regression per tag, class-balanced when
    ``balance`` > 0.  ``single_label`` (each row of ``y`` holds one class):
    one softmax regression, each class weighed by ``(n / (k * count)) ** balance``.
    """
    if single_label:
        return fit_softmax(z, y.argmax(axis=1), y.shape[1], c, balance)
    fitted = [fit_logistic(z, y[:, j], c, balance > 0) for j in range(y.shape[1])]
    return np.stack([w for w, _ in fitted], axis=1), np.array([b for _, b in fitted])


def head_output(logits: np.ndarray, label_sets: np.ndarray | None = None, single_label: bool = False) -> np.ndarray:
    """What the model outputs for the head's logits: sigmoids, marginals over ``label_sets``, or a softmax."""
    logits = np.asarray(logits, dtype="float32")
    if single_label:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if label_sets is None:
        return 1 / (1 + np.exp(-logits))
    return np.asarray(LabelSetMarginals(label_sets)(logits))


def tag_combinations(y: np.ndarray) -> np.ndarray:
    """The distinct rows of a 0/1 label matrix, most frequent first."""
    rows, counts = np.unique(np.asarray(y) > 0, axis=0, return_counts=True)
    return rows[np.argsort(-counts, kind="stable")]
