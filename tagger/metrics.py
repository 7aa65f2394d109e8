"""Multi-label metrics, in plain NumPy, always beside the naive baseline.

The baseline predicts each tag's majority value in the evaluated set, so a
rare tag's baseline accuracy is high: a model is only useful where it beats it.
Undefined ratios (no predicted positives, no positives at all) count as 0,
as in scikit-learn's ``zero_division=0``; average precision of a tag with no
positives is ``None``.  Macro averages run over tags with at least one positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """Area under the precision-recall curve, as a step function (scikit-learn's definition)."""
    n_pos = int(y_true.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-y_score, kind="mergesort")
    y, s = y_true[order], y_score[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each score value
    tp = np.cumsum(y)[distinct]
    precision = tp / (distinct + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_recall_curve(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-y_score, kind="mergesort")
    tp = np.cumsum(y_true[order])
    return tp / np.arange(1, len(tp) + 1), tp / max(int(y_true.sum()), 1)


def tag_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray) -> dict:
    n = len(y_true)
    tp = int(np.sum(y_true & y_pred))
    tn = int(np.sum(~y_true & ~y_pred))
    fp = int(np.sum(~y_true & y_pred))
    fn = int(np.sum(y_true & ~y_pred))
    support = tp + fn
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    mcc_den = np.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "support": support,
        "accuracy": _ratio(tp + tn, n),
        "baseline_accuracy": _ratio(max(support, n - support), n),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "balanced_accuracy": (recall + _ratio(tn, tn + fp)) / 2,
        "mcc": _ratio(tp * tn - fp * fn, mcc_den),
        "average_precision": average_precision(y_true, y_score),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }


def evaluate_predictions(y_true: np.ndarray, y_score: np.ndarray, thresholds: np.ndarray,
                         vocabulary: Sequence[str]) -> dict:
    """All figures for ``evaluate``: per tag and overall, model and baseline."""
    y_true = np.asarray(y_true, dtype=bool)
    y_score = np.asarray(y_score, dtype=np.float64)
    y_pred = y_score >= np.asarray(thresholds)[None, :]
    tags = {tag: tag_metrics(y_true[:, j], y_pred[:, j], y_score[:, j]) for j, tag in enumerate(vocabulary)}
    present = [m for m in tags.values() if m["support"] > 0]
    majority = y_true.mean(axis=0) > 0.5 if len(y_true) else np.zeros(len(vocabulary), bool)
    tp, fp, fn = (sum(m[k] for m in tags.values()) for k in ("tp", "fp", "fn"))
    micro_p, micro_r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    aps = [m["average_precision"] for m in present]
    return {
        "n_images": int(len(y_true)),
        "vocabulary": list(vocabulary),
        "thresholds": {tag: float(t) for tag, t in zip(vocabulary, thresholds, strict=False)},
        "tags": tags,
        "overall": {
            "exact_match": _ratio(np.sum(np.all(y_pred == y_true, axis=1)), len(y_true)),
            "baseline_exact_match": _ratio(np.sum(np.all(y_true == majority[None, :], axis=1)), len(y_true)),
            "hamming_loss": float(np.mean(y_pred != y_true)) if y_true.size else 0.0,
            "baseline_hamming_loss": float(np.mean(y_true != majority[None, :])) if y_true.size else 0.0,
            "macro_f1": float(np.mean([m["f1"] for m in present])) if present else 0.0,
            "micro_f1": _ratio(2 * micro_p * micro_r, micro_p + micro_r),
            "mean_average_precision": float(np.mean(aps)) if aps else None,
            "tags_at_or_above_baseline": sum(m["accuracy"] >= m["baseline_accuracy"] for m in tags.values()),
        },
    }


def evaluate_classes(y_true: np.ndarray, y_score: np.ndarray, thresholds: np.ndarray,
                     vocabulary: Sequence[str]) -> dict:
    """All figures for a single-label model: the top class against the true class, beside the baseline.

    The baseline always predicts the most frequent class.  An image whose top
    class falls short of its threshold gets no class: it counts as wrong,
    and in no class's precision.  Per class, the same figures as
    :func:`evaluate_predictions` gives per tag (one-vs-rest), so that the
    tables read alike; ``overall`` adds accuracy and the confusion matrix.
    """
    y_true = np.asarray(y_true, dtype=bool)
    y_score = np.asarray(y_score, dtype=np.float64)
    k = len(vocabulary)
    truth = y_true.argmax(axis=1)
    top = y_score.argmax(axis=1) if len(y_score) else np.zeros(0, int)
    given = y_score[np.arange(len(top)), top] >= np.asarray(thresholds)[top] if len(top) else np.zeros(0, bool)
    y_pred = np.zeros_like(y_true)
    y_pred[np.arange(len(top))[given], top[given]] = True
    majority = int(np.bincount(truth, minlength=k).argmax()) if len(truth) else 0
    tags = {}
    for j, tag in enumerate(vocabulary):
        m = tag_metrics(y_true[:, j], y_pred[:, j], y_score[:, j])
        always = np.full(len(truth), j == majority)
        baseline = tag_metrics(y_true[:, j], always, always.astype(np.float64))
        m.update({f"baseline_{key}": baseline[key] for key in ("precision", "recall", "f1")})
        tags[tag] = m
    present = [m for m in tags.values() if m["support"] > 0]
    aps = [m["average_precision"] for m in present]
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (truth, top), 1)
    return {
        "n_images": int(len(y_true)),
        "single_label": True,
        "vocabulary": list(vocabulary),
        "thresholds": {tag: float(t) for tag, t in zip(vocabulary, thresholds, strict=False)},
        "tags": tags,
        "overall": {
            "accuracy": _ratio(np.sum(given & (top == truth)), len(truth)),
            "baseline_accuracy": _ratio(np.sum(truth == majority), len(truth)),
            "baseline_class": vocabulary[majority],
            "no_class": int(np.sum(~given)),
            "macro_f1": float(np.mean([m["f1"] for m in present])) if present else 0.0,
            "baseline_macro_f1": float(np.mean([m["baseline_f1"] for m in present])) if present else 0.0,
            "mean_average_precision": float(np.mean(aps)) if aps else None,
            "classes_at_or_above_baseline_f1": sum(m["f1"] >= m["baseline_f1"] for m in present),
        },
        "confusion_matrix": matrix.tolist(),
    }


def confusion_matrix(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray | None:
    """For single-label data (one tag per photo): true class x arg-max predicted class."""
    y_true = np.asarray(y_true, dtype=bool)
    if len(y_true) == 0 or not np.all(y_true.sum(axis=1) == 1):
        return None
    k = y_true.shape[1]
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y_true.argmax(axis=1), np.asarray(y_score).argmax(axis=1)), 1)
    return matrix


#: The thresholds calibration chooses from.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def calibrate_thresholds(y_true: np.ndarray, y_score: np.ndarray,
                         grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """Per tag, the threshold on ``grid`` with the best F1 (ties: closest to 0.5).

    A tag with no positives keeps 0.5: there is nothing to calibrate on.
    """
    y_true = np.asarray(y_true, dtype=bool)
    result = np.full(y_true.shape[1], 0.5)
    for j in range(y_true.shape[1]):
        if not y_true[:, j].any():
            continue
        scores = [tag_metrics(y_true[:, j], y_score[:, j] >= t, y_score[:, j])["f1"] for t in grid]
        best = max(scores)
        candidates = [t for t, f in zip(grid, scores, strict=True) if f == best]
        result[j] = min(candidates, key=lambda t: abs(t - 0.5))
    return result
