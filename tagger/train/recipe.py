"""The recipe itself: ``train`` runs the parts in order and writes the bundle and its card."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import tagger
from tagger._tf import keras
from tagger.camera import DESCRIPTION as CAMERA_DESCRIPTION
from tagger.bundle import file_sha256
from tagger.codes import BITS, fit_for_session, save_code_map
from tagger.discover import discover
from tagger.labels import labels_from_metadata, match_labels
from tagger.metrics import calibrate_thresholds, evaluate_classes, evaluate_predictions
from tagger.model import CAMERA_WEIGHT, PREPROCESSING, TaggerSession, backbone_layers, build_model, save_weights
from tagger.splits import SPLITS, group_folds, sequence_groups, split_by_group
from tagger.train import TrainError
from tagger.train.features import (VIEWS, cache_features, check_map_memory, fine_tune_split, initial_weights,
                                   pretrained_feature_layer, read_photos, save_shared_backbone, tuned_layers,
                                   with_camera)
from tagger.train.fine_tune import fine_tune_top
from tagger.train.heads import tag_combinations
from tagger.train.sweep import fit_frozen_head


def train(image_dir, out_dir, *, vocabulary: Sequence[str] = tagger.TERC_TAGS, labels: dict | None = None,
          labels_source: str = "labels file",
          weights: str = "imagenet", input_size: int = 224, epochs: int = 30, batch_size: int = 32,
          c_values: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0), learning_rates: Sequence[float] = (1e-4,),
          fine_tune_blocks: int = 0, views: int = 2, balance: bool = True, pooling: str = "gem",
          label_sets: bool = True, refit: bool = True, sequence_gap: int = 100, camera: bool = False,
          head: str = "auto", backbone_dir: str | os.PathLike | None = None,
          code_bits: int = BITS, seed: int = 0, follow_symlinks: bool = False,
          log: Callable[[str], None] = print) -> dict:
    """Train a model on ``image_dir`` and write a bundle to ``out_dir``; return its card.

    ``head``: ``sigmoid`` (independent tags), ``softmax`` (one class per
    image), or ``auto``: softmax where every labelled image has exactly one
    class.  ``backbone_dir``: keep a frozen backbone there, shared by the
    bundles trained on it, instead of inside this bundle.
    """
    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    if camera and fine_tune_blocks:
        raise TrainError("the camera's evidence joins the frozen head only; drop --fine-tune-blocks or --camera")
    root = Path(image_dir)
    if not root.is_dir():
        raise TrainError(f"{root} is not a folder")
    found = discover(root, follow_symlinks)
    if labels is None:
        photo_labels, unreadable = labels_from_metadata(root, found.photos, vocabulary, follow_symlinks)
        source = "metadata: XMP dc:subject, IPTC Keywords, EXIF XPKeywords, lr:hierarchicalSubject leaves"
    else:
        photo_labels, unreadable = match_labels(found.photos, labels), []
        source = labels_source
    for rel, reason in unreadable:
        log(f"skipping {rel}: {reason}")
    labelled = {str(p): tags for p, tags in photo_labels.items() if tags}
    if len(labelled) < 10:
        raise TrainError(f"{root}: only {len(labelled)} photos carry a tag of the vocabulary; need at least 10")
    log(f"{len(labelled)} labelled photos ({len(found.photos) - len(labelled)} without a vocabulary tag left out)")
    one_class_each = all(len(tags) == 1 for tags in labelled.values())
    if head == "softmax" and not one_class_each:
        raise TrainError("a softmax head needs exactly one class per image; some images have several")
    single_label = head == "softmax" or (head == "auto" and one_class_each)
    if single_label and label_sets:
        label_sets = False  # one class per image: a softmax already weighs the classes as a whole
    if single_label and camera:
        raise TrainError("the camera's evidence is for multi-label photo tags; drop --camera for a single-label model")
    log(f"head: {'softmax, one class per image' if single_label else 'sigmoid, one unit per tag'}")

    groups = sequence_groups(list(labelled), sequence_gap)
    split = split_by_group(labelled, groups, seed=seed)
    names = {s: sorted(n for n, v in split.items() if v == s) for s in SPLITS}
    pixels, y, cameras = {}, {}, {}
    for s in SPLITS:
        names[s], pixels[s], cameras[s] = read_photos(root, names[s], input_size, log, follow_symlinks)
        y[s] = np.array([[tag in labelled[n] for tag in vocabulary] for n in names[s]], dtype="float32")
    log("split: " + ", ".join(f"{s} {len(names[s])}" for s in SPLITS))

    if refit and fine_tune_blocks:
        log("fine-tuning stops early on the validation photos, so the head is not refit on them")
        refit = False
    fit_labels = np.concatenate([y["train"], y["validation"]]) if refit else y["train"]
    combinations = tag_combinations(fit_labels) if label_sets else None
    feature_layer = pretrained_feature_layer(weights)
    model = build_model(len(vocabulary), input_size, feature_layer, pooling, combinations, camera=camera,
                        activation="softmax" if single_label else "sigmoid")
    provenance = initial_weights(model, weights)
    split_layer = fine_tune_split(model, fine_tune_blocks)
    extractor = keras.Model(model.inputs[0], model.get_layer(split_layer).output)
    if fine_tune_blocks:  # feature maps, not vectors: check that they fit before hours are spent
        check_map_memory(extractor, len(names["train"]) * views + len(names["validation"]))

    def all_views(photos: np.ndarray, count: int) -> np.ndarray:  # maps in float16: half the memory
        dtype = "float16" if fine_tune_blocks else "float32"
        return cache_features(extractor, photos, VIEWS[:count], batch_size, dtype)

    log(f"caching features at {split_layer} ({views} views of the photos fit)")
    x_train, y_train = all_views(pixels["train"], views), np.tile(y["train"], (views, 1))
    x_val = all_views(pixels["validation"], views if refit else 1)
    pooled_train, pooled_val = x_train, x_val
    if fine_tune_blocks:  # the frozen phase needs pooled features: run the still-frozen blocks once
        pooled = keras.Model(model.get_layer(split_layer).output, model.get_layer("pool").output)
        pooled_train, pooled_val = (pooled.predict(x, batch_size=batch_size, verbose=0) for x in (x_train, x_val))
    fold_of = group_folds({n: labelled[n] for n in names["train"]}, groups, 5, seed)
    folds = np.tile([fold_of[n] for n in names["train"]], views)
    n_val = len(names["validation"])  # the first view is the photo itself
    judged_val, y_val_fit = pooled_val[:n_val], np.tile(y["validation"], (views, 1))
    if camera:  # each view beside its photo's evidence, every second one without it (EXIF dropout)
        pooled_train, copies = with_camera(pooled_train, cameras["train"], views)
        y_train, folds = np.tile(y["train"], (copies, 1)), np.tile([fold_of[n] for n in names["train"]], copies)
        judged_val = np.concatenate([judged_val, cameras["validation"]], axis=1)
        if refit:
            pooled_val, copies = with_camera(pooled_val, cameras["validation"], views)
            y_val_fit = np.tile(y["validation"], (copies, 1))
    # A softmax head weighs its classes by (n / (k * count)) ** balance: the sweep picks the power.
    balance_values = ((0.0, 0.5, 1.0) if single_label else (1.0,)) if balance else (0.0,)
    chosen, c_sweep, held_out = fit_frozen_head(
        model, pooled_train, y_train, folds, judged_val, y["validation"], c_values, balance_values, log,
        label_sets, refit_with=(pooled_val, y_val_fit) if refit else None, camera=camera,
        single_label=single_label)
    del pooled_train, pooled_val

    # Shared before fine-tuning changes its last blocks: the bundle keeps its own copy of those.
    shared = None if backbone_dir is None else save_shared_backbone(model, Path(backbone_dir), feature_layer)
    fine_tune = None
    if fine_tune_blocks:
        fine_tune = fine_tune_top(model, split_layer, (x_train, y_train), (x_val, y["validation"]),
                                  chosen["balance"], learning_rates, epochs, batch_size, seed, log, single_label)
    del x_train, x_val

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("codes.json", "codes.npz"):  # a code map of an earlier model in this folder fits no longer
        (out / stale).unlink(missing_ok=True)
    if shared is not None:
        provenance = {**provenance, "shared_file": os.path.relpath(shared, out), "shared_sha256": file_sha256(shared)}
        tuned = tuned_layers(model, split_layer) if fine_tune and fine_tune["kept"] else set()
        save_weights(model, out / "weights.npz", skip=backbone_layers(model) - tuned)
    else:
        save_weights(model, out / "weights.npz")
    card = {
        "format": "terc-tag model bundle, version 1",
        "name": out.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool_version": tagger.__version__,
        "vocabulary": list(vocabulary),
        "input_size": input_size,
        "preprocessing": {
            "decode": "tagger.decode.decode_photo: EXIF orientation applied, 8-bit RGB, JPEG DCT-scaled draft, "
                      "bilinear resize of the whole photo to input_size x input_size (no crop)",
            "normalisation": PREPROCESSING,
        },
        "backbone": {"architecture": "ResNet-50 (keras.applications)", "feature_layer": feature_layer,
                     "weights": provenance},
        "inputs": {"rgb": "the photo's pixels (see preprocessing)",
                   **({"camera": CAMERA_DESCRIPTION} if camera else {})},
        "head": {
            "activation": "softmax" if single_label else "sigmoid",
            "pooling": pooling,
            "label_sets": None if combinations is None else
            [[tag for tag, on in zip(vocabulary, row) if on] for row in combinations],
            "description": f"{'generalized-mean (p=3)' if pooling == 'gem' else 'global average'} pooling, "
                           "standardization (statistics of the photos fit), "
                           + ("dense softmax (one class per image: the top class is its tag)" if single_label
                              else "dense sigmoid (one unit per tag)")
                           + ("; then per-tag marginals of a posterior over the tag combinations of the "
                              "photos fit (label_sets)" if combinations is not None else ""),
        },
        "thresholds": {"default": 0.0 if single_label else 0.5},
        "training": {
            "labels_source": source,
            "data": {"root": os.path.relpath(root.resolve(), out.resolve()), "n_photos": len(labelled),
                     "tag_counts": {t: int(sum(t in v for v in labelled.values())) for t in vocabulary}},
            "recipe": {"views": views, "class_balanced": balance,
                       "class_weight": "(n / (classes * count)) ** balance, balance chosen by the sweep"
                       if single_label else None,
                       "camera": {"weight": CAMERA_WEIGHT,
                                  "dropout": "every second view of a photo fit without its EXIF"} if camera else None,
                       "frozen_head": {"solver": "exact L2 softmax regression (truncated Newton)" if single_label
                                       else "exact L2 logistic regression per tag (Newton)",
                                       "C_chosen_by": ("the mean of macro-F1 and accuracy" if single_label else
                                                       "tags at or above baseline, then the mean of macro-F1 and "
                                                       "exact match") + ", on the validation photos plus the training "
                                                      "photos' out-of-fold predictions (5 folds grouped by sequence)",
                                       "C_sweep": c_sweep, "C": chosen["C"], "balance": chosen["balance"],
                                       "fit_on": "training + validation photos" if refit else "training photos"},
                       "fine_tune": fine_tune, "epochs_max": epochs, "batch_size": batch_size, "seed": seed},
        },
        "split": {"method": f"grouped by photo sequence (frame gap <= {sequence_gap}), stratified by tag, "
                            "60/20/20", **{s: names[s] for s in SPLITS}},
    }
    (out / "model.json").write_text(json.dumps(card, indent=1))

    # Measure the bundle as saved (float16 weights), through the same code as `evaluate`.
    session = TaggerSession(out)
    unseen = ("test",) if refit else ("validation", "test")
    probabilities = {s: _predict(session, pixels[s], cameras[s], batch_size) for s in unseen}
    if single_label:  # the top class is the tag: no per-class thresholds to calibrate
        card["metrics"] = {s: {"top_class": evaluate_classes(y[s], probabilities[s], np.zeros(len(vocabulary)),
                                                             vocabulary)} for s in unseen}
    else:
        if fine_tune and fine_tune["kept"]:  # the frozen head's held-out predictions no longer describe the model
            calibrated = calibrate_thresholds(y["validation"], probabilities["validation"])
            card["thresholds"]["calibrated_on"] = "validation split, best F1 per tag on a 0.05 grid"
        else:
            calibrated = calibrate_thresholds(*held_out)
            card["thresholds"]["calibrated_on"] = ("the held-out predictions that chose C (validation photos and "
                                                   "the training photos' out-of-fold predictions), best F1 per tag "
                                                   "on a 0.05 grid")
        card["thresholds"]["calibrated"] = {t: float(v) for t, v in zip(vocabulary, calibrated)}
        card["metrics"] = {
            s: {choice: evaluate_predictions(y[s], probabilities[s], thr, vocabulary)
                for choice, thr in (("threshold_0.5", np.full(len(vocabulary), 0.5)), ("calibrated", calibrated))}
            for s in unseen}
    if camera:  # the same photos as if their EXIF had been stripped
        for s in unseen:
            card["metrics"][s]["threshold_0.5_without_camera"] = evaluate_predictions(
                y[s], _predict(session, pixels[s], None, batch_size), np.full(len(vocabulary), 0.5), vocabulary)
    if code_bits:  # on the photos the head was fit on; measured on the test photos
        fit = [s for s in ("train", "validation") if s == "train" or refit]
        kernel, bias, codes_card = fit_for_session(
            session, (np.concatenate([pixels[s] for s in fit]), np.concatenate([y[s] for s in fit]),
                      sum((names[s] for s in fit), [])),
            (pixels["test"], y["test"], names["test"]), bits=code_bits, views=VIEWS[:views], seed=seed, log=log)
        save_code_map(out, kernel, bias, codes_card)
    card["training"]["seconds"] = round(time.perf_counter() - started, 1)
    (out / "model.json").write_text(json.dumps(card, indent=1))
    return card


def _predict(session: TaggerSession, pixels: np.ndarray, camera: np.ndarray | None, batch_size: int) -> np.ndarray:
    """Probabilities in batches; ``camera`` None: as for photos without EXIF."""
    if len(pixels) == 0:
        return np.zeros((0, len(session.vocabulary)), "float32")
    return np.concatenate([session.predict(pixels[i:i + batch_size],
                                           None if camera is None else camera[i:i + batch_size])
                           for i in range(0, len(pixels), batch_size)])
