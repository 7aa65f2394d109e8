import numpy as np
import pytest

from tagger.metrics import average_precision, calibrate_thresholds, confusion_matrix, evaluate_predictions


def test_hand_computed_example():
    # 4 photos, tags A (2 positives) and B (1 positive).
    y_true = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], bool)
    y_score = np.array([[0.9, 0.1], [0.4, 0.2], [0.6, 0.7], [0.1, 0.8]])
    report = evaluate_predictions(y_true, y_score, np.array([0.5, 0.5]), ["A", "B"])
    a, b = report["tags"]["A"], report["tags"]["B"]
    # A: predicted [1,0,1,0] -> tp 1, fp 1, fn 1, tn 1
    assert (a["precision"], a["recall"], a["f1"], a["accuracy"]) == (0.5, 0.5, 0.5, 0.5)
    assert a["baseline_accuracy"] == 0.5
    assert a["mcc"] == 0.0
    # B: predicted [0,0,1,1] -> tp 1, fp 1, tn 2
    assert b["accuracy"] == 0.75 and b["baseline_accuracy"] == 0.75
    assert b["balanced_accuracy"] == pytest.approx((1.0 + 2 / 3) / 2)
    # B's scores rank the positive second of four: AP = 1/2.
    assert b["average_precision"] == pytest.approx(0.5)
    overall = report["overall"]
    assert overall["exact_match"] == 0.25  # only photo 1 has both tags right
    assert overall["baseline_exact_match"] == 0.25  # majority: A absent(tie->absent), B absent -> photo 4
    assert overall["hamming_loss"] == pytest.approx(3 / 8)
    assert overall["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert overall["micro_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_average_precision_perfect_and_undefined():
    assert average_precision(np.array([1, 0, 1], bool), np.array([0.9, 0.1, 0.8])) == 1.0
    assert average_precision(np.array([0, 0], bool), np.array([0.3, 0.2])) is None


def test_calibration_moves_threshold_to_best_f1():
    y = np.array([[1], [1], [0], [0]], bool)
    s = np.array([[0.3], [0.35], [0.1], [0.05]])
    assert calibrate_thresholds(y, s)[0] == pytest.approx(0.3)


def test_confusion_only_for_single_label():
    assert confusion_matrix(np.array([[1, 1]], bool), np.array([[0.2, 0.9]])) is None
    matrix = confusion_matrix(np.array([[1, 0], [0, 1], [0, 1]], bool), np.array([[0.9, 0.1], [0.8, 0.3], [0.1, 0.5]]))
    assert matrix.tolist() == [[1, 0], [1, 1]]
