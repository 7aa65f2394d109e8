import numpy as np
import pytest

from tagger.train.logistic import fit_logistic, fit_softmax


def _gradient(x, y, w, b, c, s):
    p = 1 / (1 + np.exp(-(x @ w + b)))
    return x.T @ (s * (p - y)) + w / c, np.sum(s * (p - y))


def test_solution_is_the_optimum():
    """At the optimum the gradient of the regularized, weighted objective vanishes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] + 0.5 * rng.normal(size=200) > 1.0).astype(float)  # imbalanced, noisy
    w, b = fit_logistic(x, y, c=0.5, balanced=True)
    n, positives = len(y), y.sum()
    s = np.where(y > 0, n / (2 * positives), n / (2 * (n - positives)))
    gw, gb = _gradient(x, y, w, b, 0.5, s)
    assert np.abs(gw).max() < 1e-4 and abs(gb) < 1e-4
    assert w[0] > 1 and np.abs(w[1:]).max() < w[0] / 3  # it found the informative feature


def test_stronger_regularization_shrinks_weights():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 3))
    y = (x[:, 1] > 0).astype(float)
    assert np.linalg.norm(fit_logistic(x, y, c=0.01)[0]) < np.linalg.norm(fit_logistic(x, y, c=1.0)[0])


def test_balancing_raises_recall_of_a_rare_tag():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] + rng.normal(size=300) > 2.2).astype(float)
    recall = {}
    for balanced in (False, True):
        w, b = fit_logistic(x, y, c=1.0, balanced=balanced)
        recall[balanced] = ((x @ w + b > 0) & (y > 0)).sum() / y.sum()
    assert recall[True] > recall[False]


def test_more_features_than_photos_still_reaches_the_optimum():
    """With d > n the solver works in the span of the photos; the full gradient must still vanish."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 300))
    y = (x[:, 0] + 0.3 * rng.normal(size=40) > 0.3).astype(float)
    w, b = fit_logistic(x, y, c=0.1, balanced=False)
    assert w.shape == (300,)
    gw, gb = _gradient(x, y, w, b, 0.1, np.ones(40))
    assert np.abs(gw).max() < 1e-4 and abs(gb) < 1e-4


@pytest.mark.parametrize("balance", [0.0, 1.0])
def test_softmax_regression_reaches_its_optimum(balance):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 20))
    y = (x @ rng.normal(size=(20, 4)) + rng.gumbel(size=(600, 4)) + [2, 0, 0, -1]).argmax(axis=1)
    w, b = fit_softmax(x, y, 4, c=0.5, balance=balance)
    z = x @ w + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    counts = np.bincount(y, minlength=4)
    s = ((600 / (4 * counts)) ** balance)[y][:, None]
    residual = s * (p - np.eye(4)[y])
    assert np.abs(x.T @ residual + w / 0.5).max() < 1e-3 and np.abs(residual.sum(axis=0)).max() < 1e-3  # gradient 0
    assert np.mean(z.argmax(axis=1) == y) > 0.7
