"""``terc-tag train``: fine-tune ResNet-50 on photos whose tags are in their metadata.

The recipe, each step cheap enough for a 2-core machine:

1. Split 60/20/20 by photo sequence (``tagger.splits``).
2. Run the frozen backbone once per photo and cache its pooled features,
   for the photos fit under ``views`` dihedral views: by default the photo
   and its mirror image, which keeps the horizon and the cabin's "up"
   (flips and quarter turns beyond that lost in cross-validation).
3. Frozen phase: standardize the (GeM-pooled) features with the training
   statistics and solve a class-balanced, L2-regularized logistic head per tag
   exactly (``tagger.logistic``), once per strength ``C`` of the sweep; keep
   the ``C`` whose held-out predictions (validation photos, plus the
   training photos' out-of-fold predictions in 5 folds grouped by sequence)
   keep the most tags at or above their baseline accuracy, then the best
   mean of macro-F1 and exact match.  With ``label_sets`` the head ends in
   ``LabelSetMarginals`` over the tag combinations of the photos it was fit
   on, and the sweep scores its output.  With ``refit`` (the default) the
   head kept is fit once more at the chosen C on the training and
   validation photos together.
4. Optional fine-tune phase (``fine_tune_blocks`` > 0, no refit): unfreeze
   the last residual blocks and train them with the head by Adam, once per
   learning rate of the sweep, with early stopping on validation loss; keep
   it only if it lowers the validation loss of the frozen phase.
5. Calibrate a threshold per tag on the held-out predictions (validation,
   after fine-tuning), measure the saved bundle on the test split, and write
   the bundle with its model card.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import tagger
from tagger._tf import keras
from tagger.codes import BITS, fit_for_session, save_code_map
from tagger.decode import DecodeError, decode
from tagger.discover import discover, read_inside
from tagger.labels import labels_from_metadata, match_labels
from tagger.logistic import fit_logistic
from tagger.metrics import calibrate_thresholds, evaluate_predictions
from tagger.camera import DESCRIPTION as CAMERA_DESCRIPTION, MISSING as CAMERA_MISSING, SIZE as CAMERA_SIZE
from tagger.model import (CAMERA_WEIGHT, PREPROCESSING, LabelSetMarginals, Standardize, TaggerSession, build_model,
                          load_weights, save_weights)
from tagger.splits import SPLITS, group_folds, sequence_groups, split_by_group

#: Dihedral views of a square image: identity, flips, quarter turns, transposes.
VIEWS = (
    lambda a: a,
    lambda a: a[:, ::-1],
    lambda a: a[::-1, :],
    lambda a: a[::-1, ::-1],
    lambda a: np.rot90(a, 1),
    lambda a: np.rot90(a, 3),
    lambda a: a.transpose(1, 0, 2),
    lambda a: np.rot90(a, 2).transpose(1, 0, 2),
)


class TrainError(Exception):
    pass


def initial_weights(model: keras.Model, weights: str) -> dict:
    """Load ``imagenet`` (download), ``none`` or a local file; return provenance."""
    if weights == "none":
        return {"source": "none (random initialisation)", "layers_loaded": 0}
    if weights == "imagenet":
        try:
            reference = keras.applications.ResNet50(include_top=False, weights="imagenet")
        except Exception as exc:  # Keras reports a failed download as a bare Exception
            raise TrainError(f"cannot download the ImageNet weights ({exc}); without internet, copy "
                             "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 here and pass --weights FILE") from None
        arrays = {f"{l.name}/{i}": w for l in reference.layers for i, w in enumerate(l.get_weights())}
        return {"source": "imagenet (keras.applications download)", "layers_loaded": len(load_weights(model, arrays))}
    path = Path(weights)
    if not path.is_file():
        raise TrainError(f"--weights {weights}: not 'imagenet', 'none' or an existing file")
    if path.suffix == ".h5":  # the official Keras file, copied to an air-gapped site
        reference = keras.applications.ResNet50(include_top=False, weights=None)
        reference.load_weights(path)
        arrays = {f"{l.name}/{i}": w for l in reference.layers for i, w in enumerate(l.get_weights())}
    else:
        arrays = dict(np.load(path))
    loaded = load_weights(model, arrays)
    if not loaded:
        raise TrainError(f"--weights {weights}: no layer names match ResNet-50")
    return {"source": "file", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "layers_loaded": len(loaded)}


def pretrained_feature_layer(weights: str) -> str:
    """The deepest stage the weights cover: stage 5 when present, else stage 4."""
    if weights in ("imagenet", "none") or Path(weights).suffix == ".h5":
        return "conv5_block3_out"
    keys = np.load(weights).files
    return "conv5_block3_out" if any(k.startswith("conv5_") for k in keys) else "conv4_block6_out"


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


def fit_head(z: np.ndarray, y: np.ndarray, c: float, balanced: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One exact logistic regression per tag on standardized features: kernel (features, tags), bias (tags,)."""
    fitted = [fit_logistic(z, y[:, j], c, balanced) for j in range(y.shape[1])]
    return np.stack([w for w, _ in fitted], axis=1), np.array([b for _, b in fitted])


def head_output(logits: np.ndarray, label_sets=None) -> np.ndarray:
    """What the model outputs for the head's logits: sigmoids, or marginals over ``label_sets``."""
    logits = np.asarray(logits, dtype="float32")
    if label_sets is None:
        return 1 / (1 + np.exp(-logits))
    return np.asarray(LabelSetMarginals(label_sets)(logits))


def fit_frozen_head(model: keras.Model, x_train, y_train, folds, x_val, y_val, c_values: Sequence[float],
                    balanced: bool, log, label_sets: bool = False, refit_with=None,
                    camera: bool = False) -> tuple[float, dict, tuple]:
    """Set ``standardize`` and ``tags`` to the best exact logistic head.

    With ``camera`` the last ``tagger.camera.SIZE`` columns of the features
    are the camera's evidence: standardized apart (``camera_standardize``)
    and weighted by ``CAMERA_WEIGHT``, as the model does.

    C is judged on every held-out prediction outside the test split: the
    training photos' out-of-fold predictions of a grouped cross-validation
    (``folds`` holds each row's fold) together with the validation photos.
    One validation split of ~120 photos alone is too noisy a judge: a photo
    or two of a rare tag decide it.  First criterion: how many tags reach
    their majority baseline's accuracy (class balancing buys recall with
    false positives, and a tag below its baseline is worse than no tagger);
    then the mean of macro-F1 and exact match, the two figures TERC judges
    a tagger by.  With ``label_sets`` each head ends in the marginals over
    the tag combinations of the photos it was fit on.

    ``refit_with`` (features, labels), usually the validation photos, joins
    the training photos for the head finally kept: once C is chosen they have
    nothing left to judge, and more photos help (in grouped cross-validation
    of the ISS photos, fitting on 80% instead of 60% of them gains about 0.02
    in both macro-F1 and exact match).

    Returns the chosen C, the sweep, and the held-out (labels, probabilities)
    at that C, on which thresholds can be calibrated.
    """
    mean, variance = x_train.mean(axis=0), x_train.var(axis=0)
    z_train, z_val = (head_input(x, mean, variance, camera) for x in (x_train, x_val))
    tags = [str(j) for j in range(y_train.shape[1])]

    def held_out_probabilities(rows, z_held, c):
        kernel, bias = fit_head(z_train[rows], y_train[rows], c, balanced)
        return head_output(z_held @ kernel + bias, tag_combinations(y_train[rows]) if label_sets else None)

    def judge(y, scores):
        overall = evaluate_predictions(y, scores, np.full(len(tags), 0.5), tags)["overall"]
        return (overall["tags_at_or_above_baseline"], (overall["macro_f1"] + overall["exact_match"]) / 2,
                overall["macro_f1"], overall["exact_match"])

    fold_ids = np.unique(folds)
    sweep, best = {}, None
    for c in c_values:
        on_val = held_out_probabilities(slice(None), z_val, c)
        y_held, held = [y_val], [on_val]
        if len(fold_ids) > 1:  # a single training sequence has no folds to hold out
            out_of_fold = np.zeros(y_train.shape, "float32")
            for fold in fold_ids:
                out_of_fold[folds == fold] = held_out_probabilities(folds != fold, z_train[folds == fold], c)
            y_held.append(y_train)
            held.append(out_of_fold)
        y_held, held = np.concatenate(y_held), np.concatenate(held)
        held_out, validation = judge(y_held, held), judge(y_val, on_val)
        sweep[f"{c:g}"] = {"held_out": dict(zip(("tags_at_or_above_baseline", "score", "macro_f1", "exact_match"),
                                                 map(_rounded, held_out))),
                           "validation": dict(zip(("macro_f1", "exact_match"), map(_rounded, validation[2:])))}
        log(f"head C={c:g}: held out, {held_out[0]}/{len(tags)} tags at or above baseline, macro-F1 {held_out[2]:.3f}, "
            f"exact match {held_out[3]:.3f} (validation alone {validation[2]:.3f}, {validation[3]:.3f})")
        if best is None or held_out > best[0]:
            best = (held_out, c, (y_held, held))

    x_fit, y_fit = (x_train, y_train) if refit_with is None else (
        np.concatenate([x_train, refit_with[0]]), np.concatenate([y_train, refit_with[1]]))
    mean, variance = x_fit.mean(axis=0), x_fit.var(axis=0)
    kernel, bias = fit_head(head_input(x_fit, mean, variance, camera), y_fit, best[1], balanced)
    image = len(mean) - CAMERA_SIZE if camera else len(mean)
    model.get_layer("standardize").set_weights([mean[:image], variance[:image]])
    if camera:
        model.get_layer("camera_standardize").set_weights([mean[image:], variance[image:]])
    model.get_layer("tags").set_weights([kernel.astype("float32"), bias.astype("float32")])
    return best[1], sweep, best[2]


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value


def weighted_bce(pos_weight: np.ndarray):
    w = keras.ops.convert_to_tensor(np.asarray(pos_weight, dtype="float32"))

    def loss(y_true, y_pred):
        y_pred = keras.ops.clip(y_pred, 1e-7, 1 - 1e-7)
        terms = w * y_true * keras.ops.log(y_pred) + (1 - y_true) * keras.ops.log(1 - y_pred)
        return -keras.ops.mean(terms, axis=-1)

    return loss


class _EpochLog(keras.callbacks.Callback):
    def __init__(self, log, label, epochs):
        super().__init__()
        self.log, self.label, self.epochs = log, label, epochs

    def on_epoch_end(self, epoch, logs=None):
        self.log(f"{self.label} epoch {epoch + 1}/{self.epochs}: loss {logs['loss']:.4f}, val_loss {logs['val_loss']:.4f}")


def fine_tune_top(model: keras.Model, split_layer: str, train, val, balanced: bool, learning_rates, epochs,
                  batch_size, seed, log) -> dict:
    """Adam on the blocks after ``split_layer`` plus the head; keep the best rate, or the frozen head."""
    top = keras.Model(model.get_layer(split_layer).output, model.output)
    for layer in top.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # too few photos to re-estimate batch statistics
    y_train = train[1]
    positives = y_train.sum(axis=0)
    loss = weighted_bce(np.clip((len(y_train) - positives) / np.maximum(positives, 1), 1, 50) if balanced
                        else np.ones(y_train.shape[1]))
    top.compile(loss=loss)
    start = top.get_weights()
    sweep = {"frozen head": float(top.evaluate(*val, batch_size=batch_size, verbose=0))}
    best_lr, best_weights = None, start
    for lr in learning_rates:
        top.set_weights(start)
        keras.utils.set_random_seed(seed)
        top.compile(optimizer=keras.optimizers.Adam(lr), loss=loss)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
        history = top.fit(*train, validation_data=val, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True,
                          callbacks=[stop, _EpochLog(log, f"fine-tune lr={lr:g}", epochs)])
        sweep[f"{lr:g}"] = float(np.nanmin(history.history["val_loss"]))
        log(f"fine-tune learning rate {lr:g}: best validation loss {sweep[f'{lr:g}']:.4f}")
        if sweep[f"{lr:g}"] < min(v for k, v in sweep.items() if k != f"{lr:g}"):
            best_lr, best_weights = lr, top.get_weights()
    top.set_weights(best_weights)
    return {"blocks_after": split_layer, "validation_loss": sweep, "learning_rate": best_lr,
            "kept": best_lr is not None}


def tag_combinations(y: np.ndarray) -> np.ndarray:
    """The distinct rows of a 0/1 label matrix, most frequent first."""
    rows, counts = np.unique(np.asarray(y) > 0, axis=0, return_counts=True)
    return rows[np.argsort(-counts, kind="stable")]


def read_photos(root: Path, names: Sequence[str], size: int, log,
                follow_symlinks: bool = False) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The names that could be decoded, their pixels and their camera evidence (``tagger.camera``)."""
    kept, arrays, cameras = [], [], []
    for name in names:
        try:
            pixels, camera = decode(read_inside(root, name, follow_symlinks)[0], (size, size))
        except OSError as exc:
            log(f"skipping {name}: {exc.strerror or exc}")
            continue
        except DecodeError as exc:
            log(f"skipping {name}: {exc}")
            continue
        kept.append(name)
        arrays.append(pixels)
        cameras.append(camera)
    if not arrays:
        return kept, np.zeros((0, size, size, 3), np.uint8), np.zeros((0, CAMERA_SIZE), np.float32)
    return kept, np.stack(arrays), np.stack(cameras)


def train(image_dir, out_dir, *, vocabulary: Sequence[str] = tagger.TERC_TAGS, labels: dict | None = None,
          labels_source: str = "labels file",
          weights: str = "imagenet", input_size: int = 224, epochs: int = 30, batch_size: int = 32,
          c_values: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0), learning_rates: Sequence[float] = (1e-4,),
          fine_tune_blocks: int = 0, views: int = 2, balance: bool = True, pooling: str = "gem",
          label_sets: bool = True, refit: bool = True, sequence_gap: int = 100, camera: bool = False,
          code_bits: int = BITS, seed: int = 0, follow_symlinks: bool = False,
          log: Callable[[str], None] = print) -> dict:
    """Train a model on ``image_dir`` and write a bundle to ``out_dir``; return its card."""
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
    model = build_model(len(vocabulary), input_size, feature_layer, pooling, combinations, camera=camera)
    provenance = initial_weights(model, weights)
    stage, last_block = feature_layer.split("_")[0], int(feature_layer.split("_block")[1].split("_")[0])
    split_layer = "pool" if fine_tune_blocks == 0 else f"{stage}_block{last_block - fine_tune_blocks}_out"
    extractor = keras.Model(model.inputs[0], model.get_layer(split_layer).output)

    def features(batch: np.ndarray) -> np.ndarray:
        return extractor.predict(batch.astype("float32"), batch_size=batch_size, verbose=0)

    def all_views(photos: np.ndarray) -> np.ndarray:
        return np.concatenate([features(np.stack([VIEWS[v](a) for a in photos])) for v in range(views)])

    log(f"caching features at {split_layer} ({views} views of the photos fit)")
    x_train, y_train = all_views(pixels["train"]), np.tile(y["train"], (views, 1))
    x_val = all_views(pixels["validation"]) if refit else features(pixels["validation"])
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
    best_c, c_sweep, held_out = fit_frozen_head(
        model, pooled_train, y_train, folds, judged_val, y["validation"], c_values, balance, log,
        label_sets, refit_with=(pooled_val, y_val_fit) if refit else None, camera=camera)
    del pooled_train, pooled_val

    fine_tune = None
    if fine_tune_blocks:
        fine_tune = fine_tune_top(model, split_layer, (x_train, y_train), (x_val, y["validation"]), balance,
                                  learning_rates, epochs, batch_size, seed, log)
    del x_train, x_val

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("codes.json", "codes.npz"):  # a code map of an earlier model in this folder fits no longer
        (out / stale).unlink(missing_ok=True)
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
            "pooling": pooling,
            "label_sets": None if combinations is None else
            [[tag for tag, on in zip(vocabulary, row) if on] for row in combinations],
            "description": f"{'generalized-mean (p=3)' if pooling == 'gem' else 'global average'} pooling, "
                           "standardization (statistics of the photos fit), dense sigmoid (one unit per tag)"
                           + ("; then per-tag marginals of a posterior over the tag combinations of the "
                              "photos fit (label_sets)" if combinations is not None else ""),
        },
        "thresholds": {"default": 0.5},
        "training": {
            "labels_source": source,
            "data": {"root": os.path.relpath(root.resolve(), out.resolve()), "n_photos": len(labelled),
                     "tag_counts": {t: int(sum(t in v for v in labelled.values())) for t in vocabulary}},
            "recipe": {"views": views, "class_balanced": balance,
                       "camera": {"weight": CAMERA_WEIGHT,
                                  "dropout": "every second view of a photo fit without its EXIF"} if camera else None,
                       "frozen_head": {"solver": "exact L2 logistic regression per tag (Newton)",
                                       "C_chosen_by": "tags at or above baseline, then the mean of macro-F1 and "
                                                      "exact match, on the validation photos plus the training "
                                                      "photos' out-of-fold predictions (5 folds grouped by sequence)",
                                       "C_sweep": c_sweep, "C": best_c,
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
    if fine_tune and fine_tune["kept"]:  # the frozen head's held-out predictions no longer describe the model
        calibrated = calibrate_thresholds(y["validation"], probabilities["validation"])
        card["thresholds"]["calibrated_on"] = "validation split, best F1 per tag on a 0.05 grid"
    else:
        calibrated = calibrate_thresholds(*held_out)
        card["thresholds"]["calibrated_on"] = ("the held-out predictions that chose C (validation photos and the "
                                               "training photos' out-of-fold predictions), best F1 per tag on a "
                                               "0.05 grid")
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


def with_camera(features: np.ndarray, evidence: np.ndarray, views: int) -> tuple[np.ndarray, int]:
    """Each view's features beside its photo's evidence, every second view without it (EXIF dropout).

    ``features`` holds ``views`` blocks of the same photos.  The stripped
    views teach the head photos whose EXIF was stripped, so that they lose
    nothing against a model without the camera input; with a single view, a
    stripped copy of it is added.  Returns the rows and how many blocks they
    hold (to repeat the labels by).
    """
    n = len(evidence)
    blocks = [features[v * n:(v + 1) * n] for v in range(views)] + ([features[:n]] if views == 1 else [])
    rows = [np.concatenate([block, evidence if v % 2 == 0 else np.tile(CAMERA_MISSING, (n, 1))], axis=1)
            for v, block in enumerate(blocks)]
    return np.concatenate(rows), len(rows)
