"""Training's first phase: the labelled photos, the head's kind they call for, their split, decoded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tagger.discover import discover
from tagger.labels import labels_from_metadata, match_labels
from tagger.photos import read_photos
from tagger.splits import SPLITS, sequence_groups, split_by_group
from tagger.train.config import TrainConfig, TrainError

METADATA_SOURCE = "metadata: XMP dc:subject, IPTC Keywords, EXIF XPKeywords, lr:hierarchicalSubject leaves"


@dataclass
class TrainingSet:
    """The labelled photos, split, decoded: per split their names, pixels, labels and camera evidence."""

    labelled: dict[str, list[str]]
    source: str
    single_label: bool
    groups: dict
    names: dict[str, list[str]] = field(default_factory=dict)
    pixels: dict[str, np.ndarray] = field(default_factory=dict)
    y: dict[str, np.ndarray] = field(default_factory=dict)
    cameras: dict[str, np.ndarray] = field(default_factory=dict)

    def fit_splits(self, refits: bool) -> list[str]:
        """The splits the head is fit on: training, and validation when the head is refit."""
        return ["train", "validation"] if refits else ["train"]


def read_training_set(config: TrainConfig, log: Callable[[str], object]) -> TrainingSet:
    """The labelled photos of ``config.image_dir``, the head's kind, the split, and each split decoded."""
    root = Path(config.image_dir)
    found = discover(root, config.follow_symlinks)
    if config.labels is None:
        photo_labels, unreadable = labels_from_metadata(root, found.photos, config.vocabulary, config.follow_symlinks)
        source = METADATA_SOURCE
    else:
        photo_labels, unreadable, source = match_labels(found.photos, config.labels), [], config.labels_source
    for rel, reason in unreadable:
        log(f"skipping {rel}: {reason}")
    labelled = {str(p): tags for p, tags in photo_labels.items() if tags}
    if len(labelled) < 10:
        raise TrainError(f"{root}: only {len(labelled)} photos carry a tag of the vocabulary; need at least 10")
    log(f"{len(labelled)} labelled photos ({len(found.photos) - len(labelled)} without a vocabulary tag left out)")
    one_class_each = all(len(tags) == 1 for tags in labelled.values())
    if config.head == "softmax" and not one_class_each:
        raise TrainError("a softmax head needs exactly one class per image; some images have several")
    single_label = config.head == "softmax" or (config.head == "auto" and one_class_each)
    if single_label and config.camera:
        raise TrainError("the camera's evidence is for multi-label photo tags; drop --camera for a single-label model")
    log(f"head: {'softmax, one class per image' if single_label else 'sigmoid, one unit per tag'}")
    data = TrainingSet(labelled, source, single_label, sequence_groups(list(labelled), config.sequence_gap))
    split = split_by_group(labelled, data.groups, seed=config.seed)
    for s in SPLITS:
        names = sorted(n for n, v in split.items() if v == s)
        data.names[s], data.pixels[s], data.cameras[s] = read_photos(root, names, config.input_size, log,
                                                                     config.follow_symlinks)
        data.y[s] = np.array([[tag in labelled[n] for tag in config.vocabulary] for n in data.names[s]],
                             dtype="float32")
    log("split: " + ", ".join(f"{s} {len(data.names[s])}" for s in SPLITS))
    return data
