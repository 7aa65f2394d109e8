"""Which photos most need a person's look, and why: the order the review page shows them in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from tagger.similar.index import CodeIndex
from tagger.state import Record

#: Added to each tag's frequency in :func:`review_order`, so that a tag the model never gives still has a finite weight.
RARE_SMOOTHING = 0.02


def closeness(probability: float, threshold: float) -> float:
    """1 at the threshold, falling linearly to 0 at 0 and at 1: how undecided the model is about a tag."""
    return 1 - abs(probability - threshold) / (threshold if probability < threshold else 1 - threshold)


def _pending(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.status == "tagged" and r.probabilities and not r.reviewed]


def _most_pressing(pending: Sequence[Record], thresholds: dict[str, float]) -> dict[str, tuple[float, str | None]]:
    """Each photo's need and the tag it comes from: the largest closeness times the tag's rarity weight."""
    frequency = Counter(tag for r in pending for tag in r.tags)
    weight = {tag: 1 / (frequency[tag] / max(len(pending), 1) + RARE_SMOOTHING) for tag in thresholds}
    return {r.path: max(((closeness(p, thresholds[tag]) * weight[tag], tag)
                         for tag, p in (r.probabilities or {}).items() if tag in thresholds), default=(0.0, None))
            for r in pending}


def pressing_tags(records: Sequence[Record], thresholds: dict[str, float]) -> dict[str, str | None]:
    """Why :func:`review_order` shows each unreviewed photo where it does: its most pressing tag."""
    return {path: tag for path, (_, tag) in _most_pressing(_pending(records), thresholds).items()}


def review_order(records: Sequence[Record], thresholds: dict[str, float], code_key: str | None = None,
                 spread_first: int = 500) -> list[Record]:
    """The tagged photos no person has reviewed yet, those most in need of a look first.

    A photo needs a look as much as its most pressing tag: the tag's
    :func:`closeness` to its threshold divided by how often the model gives
    that tag (plus :data:`RARE_SMOOTHING`).  So a rare tag near its
    threshold comes first, then common tags near theirs and hints of rare
    ones: the photos a person is most likely to correct.

    With ``code_key`` (the bundle's ``codes_id``), the first ``spread_first``
    photos are also spread over the archive: each next photo is the one whose
    need times its Hamming distance to the nearest photo already reviewed or
    placed before it is largest.  Ten frames of one burst near a threshold
    need about the same correction, so the order shows one and moves on (the
    page's "apply to these" covers the rest).  ``benchmarks/review_loop.py``
    measures the share of the first photos shown that need a correction,
    against a random pick.
    """
    pending = _pending(records)
    needs = {path: need for path, (need, _) in _most_pressing(pending, thresholds).items()}
    ranked = sorted(pending, key=lambda record: (-needs[record.path], record.path))
    if code_key is None:
        return ranked
    reviewed = [r.code for r in records if r.reviewed and r.code and r.code_key == code_key]
    return _spread(ranked, [needs[r.path] for r in ranked], code_key, reviewed, spread_first)


def _spread(ranked: list[Record], needs: list[float], code_key: str, reviewed: list[bytes],
            count: int) -> list[Record]:
    """Greedily reorder the first ``count`` of ``ranked``: need times distance to those reviewed or placed.

    A photo without a code of ``code_key`` keeps its full need (it is as far
    as can be) and moves no other photo back.
    """
    stored = [r.code if r.code and r.code_key == code_key else None for r in ranked]
    coded = np.array([code is not None for code in stored])
    if not coded.any():
        return ranked
    width = len(next(code for code in stored if code is not None))
    codes = CodeIndex(np.frombuffer(b"".join(code if code is not None else bytes(width) for code in stored),
                                    "<u8").reshape(len(ranked), -1))

    def distances(query: np.ndarray) -> np.ndarray:
        return np.where(coded, codes.distances(query), codes.bits)

    nearest = np.full(len(ranked), float(codes.bits))
    for row in np.unique(np.frombuffer(b"".join(reviewed), "<u8").reshape(-1, codes.words.shape[1]), axis=0):
        np.minimum(nearest, distances(row), out=nearest)
    need = np.asarray(needs)
    placed, order = np.zeros(len(ranked), bool), []
    for _ in range(min(count, len(ranked))):
        best = int(np.argmax(np.where(placed, -1.0, need * np.maximum(nearest, 0.5))))
        placed[best] = True
        order.append(best)
        if coded[best]:
            np.minimum(nearest, distances(codes.words[best]), out=nearest)
    return [ranked[i] for i in order] + [r for r, done in zip(ranked, placed, strict=True) if not done]
