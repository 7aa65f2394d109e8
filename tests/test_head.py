"""The head between backbone and tags: GeM pooling and label-set marginals."""

import numpy as np
import pytest

from tagger._tf import keras
from tagger.model import GeMPool, LabelSetMarginals, build_model, head_config
from tagger.splits import group_folds
from tagger.train import FrozenFeatures, HeadSweep, fit_frozen_head, fit_head, tag_combinations


def test_gem_is_the_power_mean_between_average_and_max():
    x = np.random.default_rng(0).uniform(0, 4, (2, 5, 5, 3)).astype("float32")
    gem = np.asarray(GeMPool(3.0)(x))
    assert np.allclose(gem, np.mean(x ** 3, axis=(1, 2)) ** (1 / 3), rtol=1e-4)
    assert np.all(gem > x.mean(axis=(1, 2))) and np.all(gem < x.max(axis=(1, 2)))
    assert np.allclose(np.asarray(GeMPool(1.0)(x)), x.mean(axis=(1, 2)), rtol=1e-5)


def _logit(p):
    return np.log(p / (1 - p)).astype("float32")


def _brute_force_marginals(p, sets):
    likelihood = np.array([[np.prod(np.where(s, row, 1 - row)) for s in sets] for row in p])
    posterior = likelihood / likelihood.sum(axis=1, keepdims=True)
    return posterior @ sets


def test_label_set_marginals_match_the_posterior_over_combinations():
    sets = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 1]], dtype="float32")
    p = np.random.default_rng(1).uniform(0.01, 0.99, (50, 4)).astype("float32")
    out = np.asarray(LabelSetMarginals(sets)(_logit(p)))
    assert np.allclose(out, _brute_force_marginals(p, sets), atol=1e-5)
    assert np.allclose(out[:, 1], out[:, 2])  # tags that only ever come together get one probability


def test_label_set_marginals_stay_finite_for_confident_logits_in_bfloat16():
    sets = np.array([[1, 0], [0, 1], [1, 1]], dtype="float32")
    logits = np.array([[40.0, -40.0], [-30.0, 25.0], [0.0, 90.0]], dtype="float32")
    out = np.asarray(keras.ops.cast(LabelSetMarginals(sets)(keras.ops.cast(logits, "bfloat16")), "float32"))
    assert np.all(np.isfinite(out))
    assert out[0, 0] > 0.9 and out[0, 1] < 0.1 and out[1, 1] > 0.9 and out[2, 1] > 0.9


def test_label_sets_fill_an_empty_prediction_and_drop_an_unseen_combination():
    sets = np.array([[1, 0, 0], [0, 1, 1]], dtype="float32")  # A alone, or B with C
    weak = np.array([[0.4, 0.2, 0.3]], dtype="float32")  # independently: no tag at all
    assert np.all(weak < 0.5)
    assert np.asarray(LabelSetMarginals(sets)(_logit(weak)))[0, 0] >= 0.5
    odd = np.array([[0.9, 0.1, 0.9]], dtype="float32")  # independently: A and C, never seen together
    out = np.asarray(LabelSetMarginals(sets)(_logit(odd)))[0]
    assert out[0] >= 0.5 and out[2] < 0.5


def test_single_label_vocabulary_gives_a_distribution():
    sets = np.eye(5, dtype="float32")
    p = np.random.default_rng(2).uniform(0.01, 0.99, (10, 5)).astype("float32")
    assert np.allclose(np.asarray(LabelSetMarginals(sets)(_logit(p))).sum(axis=1), 1.0, atol=1e-5)


def test_combinations_are_the_distinct_label_rows_most_frequent_first():
    y = np.array([[0, 1], [1, 1], [0, 1], [1, 0], [0, 1]])
    combinations = tag_combinations(y).tolist()
    assert combinations[0] == [False, True] and sorted(combinations[1:]) == [[True, False], [True, True]]


def test_model_card_decides_the_head():
    vocabulary = ["A", "B", "C"]
    old = head_config({"vocabulary": vocabulary, "head": "global average pooling, ..."})
    assert old == {"pooling": "average", "label_sets": None, "activation": "sigmoid"}
    new = head_config({"vocabulary": vocabulary, "head": {"pooling": "gem", "label_sets": [["A"], ["B", "C"]]}})
    assert new == {"pooling": "gem", "label_sets": [[True, False, False], [False, True, True]], "activation": "sigmoid"}
    model = build_model(3, 32, "conv3_block4_out", **new)
    assert isinstance(model.get_layer("pool"), GeMPool) and model.output.shape[-1] == 3
    assert model.layers[-1].name == "label_sets"
    single = head_config({"vocabulary": vocabulary, "head": {"pooling": "gem", "label_sets": None,
                                                             "activation": "softmax"}})
    model = build_model(3, 32, "conv3_block4_out", **single)
    assert model.get_layer("tags").activation.__name__ == "softmax"
    with pytest.raises(ValueError, match="activation"):
        head_config({"vocabulary": vocabulary, "head": {"pooling": "gem", "activation": "relu"}})


def test_group_folds_keep_sequences_whole():
    labels = {f"s{seq}_{f}": ["Rare" if seq % 5 == 0 else "Common"] for seq in range(30) for f in range(3)}
    groups = {name: name.split("_")[0] for name in labels}
    folds = group_folds(labels, groups, k=5, seed=0)
    assert set(folds.values()) == set(range(5))
    for seq in range(30):
        assert len({folds[f"s{seq}_{f}"] for f in range(3)}) == 1
    rare_folds = {folds[n] for n, t in labels.items() if t == ["Rare"]}
    assert len(rare_folds) == 5


@pytest.mark.parametrize("pooling", ["gem", "average"])
def test_both_poolings_build(pooling):
    assert build_model(2, 32, "conv3_block4_out", pooling).output.shape[-1] == 2


@pytest.mark.parametrize("refit", [False, True])
def test_frozen_head_is_judged_held_out_and_kept_fit_on_the_photos_fit(refit):
    rng = np.random.default_rng(0)
    y = (rng.random((100, 2)) < 0.4).astype("float32")
    x = rng.normal(size=(100, 512)).astype("float32") + 2 * y @ rng.normal(size=(2, 512)).astype("float32")
    (x_train, x_val), (y_train, y_val) = (x[:80], x[80:]), (y[:80], y[80:])
    model = build_model(2, 32, "conv3_block4_out", "gem", tag_combinations(y if refit else y_train))
    data = FrozenFeatures(x_train, y_train, np.arange(80) % 5, x_val, y_val, (x_val, y_val) if refit else None)
    chosen, sweep, (y_held, p_held) = fit_frozen_head(model, data, HeadSweep((0.01, 1.0), (1.0,), label_sets=True),
                                                      lambda m: None)
    c = chosen["C"]
    assert c in (0.01, 1.0) and set(sweep) == {"0.01", "1"}
    assert len(y_held) == len(p_held) == 100 and np.all((p_held >= 0) & (p_held <= 1))
    x_fit, y_fit = (x, y) if refit else (x_train, y_train)
    mean, variance = model.get_layer("standardize").get_weights()
    assert np.allclose(mean, x_fit.mean(axis=0), atol=1e-4)
    kernel, bias = fit_head((x_fit - x_fit.mean(axis=0)) / np.sqrt(x_fit.var(axis=0) + 1e-6), y_fit, c)
    assert np.allclose(model.get_layer("tags").get_weights()[0], kernel, atol=1e-4)


def test_a_single_label_head_is_one_softmax_whose_sweep_also_picks_the_class_weights():
    rng = np.random.default_rng(1)
    classes = rng.choice(3, size=150, p=[0.7, 0.2, 0.1])
    y = np.eye(3, dtype="float32")[classes]
    x = rng.normal(size=(150, 512)).astype("float32") + 3 * y @ rng.normal(size=(3, 512)).astype("float32")
    model = build_model(3, 32, "conv3_block4_out", "gem", activation="softmax")
    data = FrozenFeatures(x[:120], y[:120], np.arange(120) % 5, x[120:], y[120:])
    chosen, sweep, (y_held, p_held) = fit_frozen_head(model, data, HeadSweep((0.1, 1.0), (0.0, 1.0), single_label=True),
                                                      lambda m: None)
    assert set(sweep) == {"C=0.1, balance=0", "C=0.1, balance=1", "C=1, balance=0", "C=1, balance=1"}
    assert set(sweep["C=1, balance=1"]["held_out"]) == {"score", "macro_f1", "accuracy"}
    assert np.allclose(p_held.sum(axis=1), 1, atol=1e-5)  # probabilities of one image sum to 1
    head = keras.Model(model.get_layer("standardize").input, model.output)
    p = head.predict(x[120:], verbose=0)
    assert np.allclose(p.sum(axis=1), 1, atol=1e-5) and np.mean(p.argmax(axis=1) == classes[120:]) > 0.9
