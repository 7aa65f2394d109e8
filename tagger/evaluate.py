"""``terc-tag evaluate``: how good is a model on photos whose tags are known?

Predictions go through the same decode and model path as ``tag``; the
figures come from ``tagger.metrics``, always beside the naive baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from tagger.bundle import Bundle, BundleError
from tagger.card import ModelCard
from tagger.decode import batched, iter_decoded
from tagger.discover import discover
from tagger.errors import TercTagError
from tagger.labels import read_labels
from tagger.metrics import confusion_matrix, evaluate_classes, evaluate_predictions, precision_recall_curve
from tagger.names import shown
from tagger.sessions import predict_decoded
from tagger.similar.codes import retrieval_metrics

if TYPE_CHECKING:
    from tagger.inference import Session


class EvaluateError(TercTagError):
    """Nothing to evaluate, or a split the model card cannot give; the message says why."""


def read_card(bundle: str | Path) -> ModelCard:
    """A bundle's model card, checked as :class:`tagger.bundle.Bundle` checks it, without loading TensorFlow."""
    try:
        return Bundle(bundle).card
    except BundleError as exc:
        raise EvaluateError(str(exc)) from None


def held_out_photos(bundle: str | Path, split: str = "test") -> tuple[Path, list[Path]]:
    """Where the card says its ``split`` photos were, and their names."""
    card = read_card(bundle)
    root = (Path(bundle) / card["training"]["data"]["root"]).resolve()
    names = sorted(card.split_photos(split))
    if not names:
        raise EvaluateError(f"the model card of {bundle} lists no {split} photos")
    if not all((root / n).is_file() for n in names):
        raise EvaluateError(f"the model's {split} photos are not at {root}; pass the folder: terc-tag evaluate DIR")
    return root, [Path(n) for n in names]


@dataclass
class Truth:
    """The photos ``evaluate`` measures a model on, with their true tags, and what was left out and why."""

    folder: Path
    #: Relative path -> the vocabulary's tags it carries (at least one).
    labels: dict[Path, list[str]]
    #: Photos whose labels could not be read, and why.
    unreadable: list[tuple[Path, str]]
    #: Photos carrying no tag of the vocabulary: unlabelled, not negative (as in training).
    unlabelled: int
    #: Photos the model card says were trained on (or used to choose the model), which flatter the figures.
    seen_in_training: int


def ground_truth(bundle: str | Path, folder: Path | None = None, split: str | None = None,
                 labels_file: Path | None = None, class_map: Path | None = None, folder_labels: bool = False,
                 follow_symlinks: bool = False) -> Truth:
    """The labelled photos to evaluate: the card's ``split`` (test by default) without ``folder``, else its photos.

    With ``folder`` and a ``split``, only the photos the card lists in that
    split.  Labels come from one source (:func:`tagger.labels.read_labels`).
    """
    card = read_card(bundle)
    if folder is None:
        folder, photos = held_out_photos(bundle, "test" if split in (None, "all") else split)
    else:
        photos = discover(folder, follow_symlinks).photos
        if split not in (None, "all"):
            members = card.split_photos(split)
            photos = [p for p in photos if _listed(p, members)]
    labels, unreadable = read_labels(folder, photos, card["vocabulary"], labels_file, class_map, folder_labels,
                                     follow_symlinks)
    labels = {p: [t for t in tags if t in card["vocabulary"]] for p, tags in labels.items()}
    labelled = {p: tags for p, tags in labels.items() if tags}
    if not labelled:
        unread = f" ({len(unreadable)} photos' metadata could not be read)" if unreadable else ""
        raise EvaluateError(f"no labelled photos to evaluate in {folder}{unread}")
    trained_on = card.split_photos("train", "validation")
    seen = 0 if split == "train" else sum(1 for p in labelled if _listed(p, trained_on))
    return Truth(folder, labelled, unreadable, len(labels) - len(labelled), seen)


def _listed(photo: Path, names: set[str]) -> bool:
    """Whether a card lists ``photo``: by its path relative to the folder, or (cards of other folders) its name."""
    return str(photo) in names or photo.name in names


def predict_photos(session: Session, root: Path, photos: Sequence[Path], batch_size: int = 32,
                   workers: int | None = None, progress: bool = False,
                   follow_symlinks: bool = False) -> tuple[list[Path], np.ndarray, np.ndarray | None, list]:
    """Probabilities and packed codes (None without a code map) for ``photos``, in order.

    Undecodable photos are returned apart.
    """
    kept, scores, failed = [], [], []
    codes: list[np.ndarray] = []
    decoded = iter_decoded(root, photos, session.size, workers, follow_symlinks=follow_symlinks)
    with tqdm(total=len(photos), unit="photo", disable=not progress, leave=False) as bar:
        for batch in batched(decoded, batch_size):
            good = [item for item in batch if item.pixels is not None]
            failed += [(item.path, item.error) for item in batch if item.pixels is None]
            if good:
                probabilities, words = predict_decoded(session, good)
                scores.append(probabilities)
                if words is not None:
                    codes.append(words)
                kept += [item.path for item in good]
            bar.update(len(batch))
    probabilities = np.concatenate(scores) if scores else np.zeros((0, len(session.vocabulary)), "float32")
    words = np.concatenate(codes) if codes else None
    return kept, probabilities, words, failed


def evaluate(session: Session, root: Path, labels: dict[Path, list[str]], threshold: float | str | None = None,
             batch_size: int = 32, workers: int | None = None, progress: bool = False,
             follow_symlinks: bool = False) -> dict:
    """The full report for the labelled photos of ``root`` (``labels``: relative path -> tags).

    With a code map, ``retrieval`` says how well the photos' codes find each
    other (``tagger.similar.codes.retrieval_metrics``); otherwise it is None.
    """
    if session.single_label:  # one class per photo: a photo with none, or two, cannot be scored
        labels = {p: tags for p, tags in labels.items() if sum(t in tags for t in session.vocabulary) == 1}
    photos = sorted(labels)
    kept, probabilities, codes, failed = predict_photos(session, root, photos, batch_size, workers, progress,
                                                 follow_symlinks)
    y_true = np.array([[tag in labels[p] for tag in session.vocabulary] for p in kept], dtype=bool).reshape(
        len(kept), len(session.vocabulary))
    thresholds = session.thresholds(threshold)
    if session.single_label:
        report = evaluate_classes(y_true, probabilities, thresholds, session.vocabulary)
    else:
        report = evaluate_predictions(y_true, probabilities, thresholds, session.vocabulary)
        matrix = confusion_matrix(y_true, probabilities)
        report["confusion_matrix"] = matrix.tolist() if matrix is not None else None
    report["model"] = str(session.path)
    report["threshold_choice"] = "the model's default" if threshold is None else threshold
    report["failed"] = [{"file": shown(p), "reason": shown(r)} for p, r in failed]
    report["retrieval"] = retrieval_metrics(codes, y_true, kept) if codes is not None and len(kept) > 1 else None
    report["curves"] = {tag: _pr_points(y_true[:, j], probabilities[:, j]) for j, tag in enumerate(session.vocabulary)}
    return report


def _pr_points(y: np.ndarray, s: np.ndarray) -> dict:
    precision, recall = precision_recall_curve(y, s)
    return {"precision": np.round(precision, 4).tolist(), "recall": np.round(recall, 4).tolist()}
