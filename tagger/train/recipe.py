"""The recipe itself: ``train`` runs the phases in order and writes the bundle, ``model.json`` last and once.

Phases: read the labelled photos and split them
(:func:`tagger.train.dataset.read_training_set`), cache their features and
fit the frozen head by the sweep, then optionally fine-tune (:func:`fit_heads`),
save the weights (:func:`save_bundle_weights`), describe the bundle
(:mod:`tagger.train.card`), measure it as saved (:func:`measure`), fit the
code map (:func:`fit_code_map`), and write the card.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tagger._tf import keras
from tagger.bundle import file_sha256
from tagger.metrics import calibrate_thresholds, evaluate_classes, evaluate_predictions
from tagger.model import TaggerSession, backbone_layers, build_model, save_weights
from tagger.outputs import atomic_write
from tagger.similar.codes import fit_for_session, save_code_map
from tagger.splits import group_folds
from tagger.train.card import Trained, describe
from tagger.train.config import TrainConfig
from tagger.train.dataset import TrainingSet, read_training_set
from tagger.train.features import (
    VIEWS,
    cache_features,
    check_map_memory,
    fine_tune_split,
    initial_weights,
    pretrained_feature_layer,
    save_shared_backbone,
    tuned_layers,
    with_camera,
)
from tagger.train.fine_tune import FineTunePlan, fine_tune_top
from tagger.train.heads import tag_combinations
from tagger.train.sweep import FrozenFeatures, HeadSweep, fit_frozen_head


def train(config: TrainConfig, log: Callable[[str], object] = print) -> dict:
    """Train a model as ``config`` says and write its bundle to ``config.out_dir``; return its card."""
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    data = read_training_set(config, log)
    if config.refit and config.fine_tune_blocks:
        log("fine-tuning stops early on the validation photos, so the head is not refit on them")
    fit_labels = np.concatenate([data.y[s] for s in data.fit_splits(config.refits)])
    combinations = tag_combinations(fit_labels) if config.label_sets and not data.single_label else None
    trained = Trained(feature_layer=pretrained_feature_layer(config.weights), combinations=combinations)
    model = build_model(len(config.vocabulary), config.input_size, trained.feature_layer, config.pooling,
                        combinations, camera=config.camera,
                        activation="softmax" if data.single_label else "sigmoid")
    trained.provenance = initial_weights(model, config.weights)
    trained.split_layer = fine_tune_split(model, config.fine_tune_blocks)
    shared = fit_heads(config, data, model, trained, log)
    out = Path(config.out_dir)
    save_bundle_weights(model, out, trained, shared)
    card = describe(config, data, trained)
    session = TaggerSession(out, card=card)  # the weights as saved (float16), with the card not yet written
    card.metrics, calibration = measure(config, data, session, trained)
    card.thresholds = {**(card.thresholds or {}), **calibration}
    if config.code_bits:
        fit_code_map(config, data, session, log)
    card.training = {**(card.training or {}), "seconds": round(time.perf_counter() - started, 1)}
    atomic_write(out / "model.json", card.to_json().encode())
    return card.to_dict()


def fit_heads(config: TrainConfig, data: TrainingSet, model: keras.Model, trained: Trained,
              log: Callable[[str], object]) -> Path | None:
    """The frozen phase, then the optional fine-tune phase; return the shared backbone's file, if kept apart."""
    extractor = keras.Model(model.inputs[0], model.get_layer(trained.split_layer).output)
    if config.fine_tune_blocks:  # feature maps, not vectors: check that they fit before hours are spent
        check_map_memory(extractor, len(data.names["train"]) * config.views + len(data.names["validation"]))
    log(f"caching features at {trained.split_layer} ({config.views} views of the photos fit)")
    dtype = "float16" if config.fine_tune_blocks else "float32"  # maps in float16: half the memory
    x_train = cache_features(extractor, data.pixels["train"], VIEWS[:config.views], config.batch_size, dtype)
    x_val = cache_features(extractor, data.pixels["validation"], VIEWS[:config.views if config.refits else 1],
                           config.batch_size, dtype)
    frozen = frozen_features(config, data, model, trained.split_layer, (x_train, x_val))
    # A softmax head weighs its classes by (n / (k * count)) ** balance: the sweep picks the power.
    balance_values = ((0.0, 0.5, 1.0) if data.single_label else (1.0,)) if config.balance else (0.0,)
    sweep = HeadSweep(config.c_values, balance_values, trained.combinations is not None, config.camera,
                      data.single_label)
    trained.chosen, trained.sweep, trained.held_out = fit_frozen_head(model, frozen, sweep, log)
    del frozen
    # Shared before fine-tuning changes its last blocks: the bundle keeps its own copy of those.
    shared = None if config.backbone_dir is None else save_shared_backbone(model, Path(config.backbone_dir),
                                                                         trained.feature_layer)
    if config.fine_tune_blocks:
        plan = FineTunePlan(config.learning_rates, config.epochs, config.batch_size, config.seed,
                            trained.chosen["balance"], data.single_label)
        y_train = np.tile(data.y["train"], (config.views, 1))
        trained.fine_tune = fine_tune_top(model, trained.split_layer, (x_train, y_train),
                                          (x_val, data.y["validation"]), plan, log)
    return shared


def frozen_features(config: TrainConfig, data: TrainingSet, model: keras.Model, split_layer: str,
                    cached: tuple[np.ndarray, np.ndarray]) -> FrozenFeatures:
    """The frozen phase's pooled rows: every view of the training photos with their folds, the validation photos.

    With the camera, each view sits beside its photo's evidence, every second one without it (EXIF dropout).
    """
    views, (x_train, x_val) = config.views, cached
    if config.fine_tune_blocks:  # the frozen phase needs pooled features: run the still-frozen blocks once
        pooled = keras.Model(model.get_layer(split_layer).output, model.get_layer("pool").output)
        x_train, x_val = (pooled.predict(x, batch_size=config.batch_size, verbose=0) for x in (x_train, x_val))
    fold_of = group_folds({n: data.labelled[n] for n in data.names["train"]}, data.groups, 5, config.seed)
    train_folds = [fold_of[n] for n in data.names["train"]]
    y_train, folds = np.tile(data.y["train"], (views, 1)), np.tile(train_folds, views)
    n_val = len(data.names["validation"])  # the first view is the photo itself
    judged_val, y_val_fit = x_val[:n_val], np.tile(data.y["validation"], (views, 1))
    if config.camera:
        x_train, copies = with_camera(x_train, data.cameras["train"], views)
        y_train, folds = np.tile(data.y["train"], (copies, 1)), np.tile(train_folds, copies)
        judged_val = np.concatenate([judged_val, data.cameras["validation"]], axis=1)
        if config.refits:
            x_val, copies = with_camera(x_val, data.cameras["validation"], views)
            y_val_fit = np.tile(data.y["validation"], (copies, 1))
    return FrozenFeatures(x_train, y_train, folds, judged_val, data.y["validation"],
                          (x_val, y_val_fit) if config.refits else None)


def fit_code_map(config: TrainConfig, data: TrainingSet, session: TaggerSession, log: Callable[[str], object]) -> None:
    """The code map for similar photos, fit on the photos the head was fit on, measured on the test photos."""
    fit = data.fit_splits(config.refits)
    kernel, bias, codes_card = fit_for_session(
        session, (np.concatenate([data.pixels[s] for s in fit]), np.concatenate([data.y[s] for s in fit]),
                  sum((data.names[s] for s in fit), [])),
        (data.pixels["test"], data.y["test"], data.names["test"]), bits=config.code_bits,
        views=VIEWS[:config.views], seed=config.seed, log=log)
    save_code_map(Path(config.out_dir), kernel, bias, codes_card)


def save_bundle_weights(model: keras.Model, out: Path, trained: Trained, shared: Path | None) -> None:
    """``weights.npz`` (without the shared backbone's layers, if kept apart); an earlier card and code map go.

    So a run that stops before its card is written leaves no bundle whose
    card describes other weights.
    """
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.json", "codes.json", "codes.npz"):  # an earlier model's in this folder fit no longer
        (out / stale).unlink(missing_ok=True)
    if shared is None:
        save_weights(model, out / "weights.npz")
        return
    trained.provenance = {**trained.provenance, "shared_file": os.path.relpath(shared, out),
                          "shared_sha256": file_sha256(shared)}
    kept = trained.fine_tune and trained.fine_tune["kept"]
    tuned = tuned_layers(model, trained.split_layer) if kept else set()
    save_weights(model, out / "weights.npz", skip=backbone_layers(model) - tuned)


def measure(config: TrainConfig, data: TrainingSet, session: TaggerSession, trained: Trained) -> tuple[dict, dict]:
    """The bundle's figures on the photos it has not seen, through the same code as ``evaluate``.

    And for a multi-label head its per-tag thresholds, calibrated on held-out
    predictions: the card's ``thresholds`` fields to add.
    """
    vocabulary, batch = config.vocabulary, config.batch_size
    unseen = ("test",) if config.refits else ("validation", "test")
    probabilities = {s: _predict(session, data.pixels[s], data.cameras[s], batch) for s in unseen}
    if data.single_label:  # the top class is the tag: no per-class thresholds to calibrate
        return {s: {"top_class": evaluate_classes(data.y[s], probabilities[s], np.zeros(len(vocabulary)),
                                                  vocabulary)} for s in unseen}, {}
    if trained.fine_tune and trained.fine_tune["kept"]:  # the frozen head's held-out predictions describe it no more
        calibrated = calibrate_thresholds(data.y["validation"], probabilities["validation"])
        calibrated_on = "validation split, best F1 per tag on a 0.05 grid"
    else:
        calibrated = calibrate_thresholds(*trained.held_out)
        calibrated_on = ("the held-out predictions that chose C (validation photos and the training photos' "
                         "out-of-fold predictions), best F1 per tag on a 0.05 grid")
    calibration = {"calibrated_on": calibrated_on,
                   "calibrated": {t: float(v) for t, v in zip(vocabulary, calibrated, strict=False)}}
    half = np.full(len(vocabulary), 0.5)
    metrics = {s: {choice: evaluate_predictions(data.y[s], probabilities[s], thr, vocabulary)
                   for choice, thr in (("threshold_0.5", half), ("calibrated", calibrated))} for s in unseen}
    if config.camera:  # the same photos as if their EXIF had been stripped
        for s in unseen:
            metrics[s]["threshold_0.5_without_camera"] = evaluate_predictions(
                data.y[s], _predict(session, data.pixels[s], None, batch), half, vocabulary)
    return metrics, calibration


def _predict(session: TaggerSession, pixels: np.ndarray, camera: np.ndarray | None, batch_size: int) -> np.ndarray:
    """Probabilities in batches; ``camera`` None: as for photos without EXIF."""
    if len(pixels) == 0:
        return np.zeros((0, len(session.vocabulary)), "float32")
    return np.concatenate([session.predict(pixels[i:i + batch_size],
                                           None if camera is None else camera[i:i + batch_size])
                           for i in range(0, len(pixels), batch_size)])
