"""The card training writes: what was trained, on what, how, and how well (:class:`tagger.card.ModelCard`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import tagger
from tagger.camera import DESCRIPTION as CAMERA_DESCRIPTION
from tagger.card import FORMAT, ModelCard
from tagger.inference import CAMERA_WEIGHT, PREPROCESSING
from tagger.splits import SPLITS
from tagger.train.config import TrainConfig
from tagger.train.dataset import TrainingSet

DECODE = ("tagger.decode.decode_photo: EXIF orientation applied, 8-bit RGB, JPEG DCT-scaled draft, "
          "bilinear resize of the whole photo to input_size x input_size (no crop)")


@dataclass
class Trained:
    """What the phases decided, for the card: the network's start, the frozen head's sweep, the fine-tune."""

    feature_layer: str
    combinations: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)
    split_layer: str = "pool"
    chosen: dict = field(default_factory=dict)
    sweep: dict = field(default_factory=dict)
    held_out: tuple = ()
    fine_tune: dict | None = None


def describe(config: TrainConfig, data: TrainingSet, trained: Trained) -> ModelCard:
    """The card of a bundle just trained, before it is measured (``metrics``, calibrated thresholds)."""
    out, vocabulary = Path(config.out_dir), list(config.vocabulary)
    return ModelCard(
        format=FORMAT, name=out.name, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tool_version=tagger.__version__, vocabulary=vocabulary, input_size=config.input_size,
        preprocessing={"decode": DECODE, "normalisation": PREPROCESSING},
        backbone={"architecture": "ResNet-50 (keras.applications)", "feature_layer": trained.feature_layer,
                  "weights": trained.provenance},
        inputs={"rgb": "the photo's pixels (see preprocessing)",
                **({"camera": CAMERA_DESCRIPTION} if config.camera else {})},
        head=_head(config, data.single_label, trained.combinations),
        thresholds={"default": 0.0 if data.single_label else 0.5},
        training={"labels_source": data.source,
                  "data": {"root": os.path.relpath(Path(config.image_dir).resolve(), out.resolve()),
                           "n_photos": len(data.labelled),
                           "tag_counts": {t: int(sum(t in v for v in data.labelled.values())) for t in vocabulary}},
                  "recipe": _recipe(config, data.single_label, trained)},
        split={"method": f"grouped by photo sequence (frame gap <= {config.sequence_gap}), stratified by tag, "
                         "60/20/20", **{s: data.names[s] for s in SPLITS}})


def _head(config: TrainConfig, single_label: bool, combinations: np.ndarray | None) -> dict:
    return {
        "activation": "softmax" if single_label else "sigmoid",
        "pooling": config.pooling,
        "label_sets": None if combinations is None else
        [[tag for tag, on in zip(config.vocabulary, row, strict=False) if on] for row in combinations],
        "description": f"{'generalized-mean (p=3)' if config.pooling == 'gem' else 'global average'} pooling, "
                       "standardization (statistics of the photos fit), "
                       + ("dense softmax (one class per image: the top class is its tag)" if single_label
                          else "dense sigmoid (one unit per tag)")
                       + ("; then per-tag marginals of a posterior over the tag combinations of the "
                          "photos fit (label_sets)" if combinations is not None else ""),
    }


def _recipe(config: TrainConfig, single_label: bool, trained: Trained) -> dict:
    chosen_by = ("the mean of macro-F1 and accuracy" if single_label else
                 "tags at or above baseline, then the mean of macro-F1 and exact match")
    return {"views": config.views, "class_balanced": config.balance,
            "class_weight": "(n / (classes * count)) ** balance, balance chosen by the sweep"
            if single_label else None,
            "camera": {"weight": CAMERA_WEIGHT,
                       "dropout": "every second view of a photo fit without its EXIF"} if config.camera else None,
            "frozen_head": {"solver": "exact L2 softmax regression (truncated Newton)" if single_label
                            else "exact L2 logistic regression per tag (Newton)",
                            "C_chosen_by": chosen_by + ", on the validation photos plus the training photos' "
                                                       "out-of-fold predictions (5 folds grouped by sequence)",
                            "C_sweep": trained.sweep, "C": trained.chosen["C"], "balance": trained.chosen["balance"],
                            "fit_on": "training + validation photos" if config.refits else "training photos"},
            "fine_tune": trained.fine_tune, "epochs_max": config.epochs, "batch_size": config.batch_size,
            "seed": config.seed}
