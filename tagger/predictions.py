"""Stage 5: the state as files people read: ``predictions.csv``, and which photos most need a look.

``predictions.csv`` has one row per tagged photo: its probabilities, its
tags, the tags near their threshold, and when a person reviewed it.  Its
``file`` column, like the ``--review`` CSV's, is :func:`tagger.names.shown`
of the photo's path: one line of UTF-8 whatever the name, and
:func:`tagger.names.unshown` gives the exact name back.  A run
writes it whole from the state; a correction rewrites just its rows.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tagger.names import shown
from tagger.outputs import atomic_write, csv_bytes, from_spreadsheet_text, temp_folder
from tagger.similar import CodeIndex
from tagger.state import Record, State

PREDICTIONS_CSV = "predictions.csv"


def uncertain_tags(probabilities: dict[str, float], thresholds: dict[str, float],
                   margin: float) -> list[tuple[str, float]]:
    """Tags whose probability lies within ``margin`` of their threshold, closest first."""
    near = [(tag, abs(p - thresholds[tag])) for tag, p in probabilities.items()
            if tag in thresholds and abs(p - thresholds[tag]) < margin]
    return sorted(near, key=lambda item: item[1])


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


def _row(record: Record, vocabulary: Sequence[str], limits: dict[str, float], margin: float) -> list[str]:
    probs = record.probabilities or {}
    near = uncertain_tags(probs, limits, margin)
    return ([shown(record.path)] + [f"{probs[t]:.4f}" if t in probs else "" for t in vocabulary]
            + [";".join(record.tags), ";".join(t for t, _ in near), record.reviewed or ""])


def write_predictions(output_dir: Path, state: State, vocabulary: Sequence[str],
                      thresholds: Sequence[float] | np.ndarray, margin: float) -> None:
    limits = dict(zip(vocabulary, map(float, thresholds), strict=False))
    rows = [_row(r, vocabulary, limits, margin) for r in state.records()
            if r.status == "tagged" and r.probabilities is not None]
    atomic_write(Path(output_dir) / PREDICTIONS_CSV,
                 csv_bytes(["file", *vocabulary, "tags", "uncertain", "reviewed"], rows),
                 temp_dir=temp_folder(output_dir))


def update_predictions(output_dir: Path, records: Sequence[Record]) -> bool:
    """Rewrite the rows of ``records`` in ``predictions.csv`` (tags and reviewed); False if there is none yet.

    Probabilities and the uncertain column stay as the last run wrote them.
    A file written before terc-tag 0.4 gains its ``reviewed`` column.
    """
    path = Path(output_dir) / PREDICTIONS_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    table = [[from_spreadsheet_text(cell) for cell in row] for row in csv.reader(io.StringIO(text))]
    header, rows = table[0], table[1:]
    if "reviewed" not in header:
        header.append("reviewed")
        rows = [row + [""] for row in rows]
    tags_at, reviewed_at = header.index("tags"), header.index("reviewed")
    changed = {shown(r.path): r for r in records}
    for row in rows:
        record = changed.get(row[0])
        if record is not None:
            row[tags_at], row[reviewed_at] = ";".join(record.tags), record.reviewed or ""
    atomic_write(path, csv_bytes(header, rows), temp_dir=temp_folder(output_dir))
    return True


def write_review(path: Path, output_dir: Path, thresholds: dict[str, float], margin: float) -> int:
    """Write the unreviewed photos' tags near their threshold, most uncertain first; return how many photos."""
    state = State.reader(output_dir)
    entries = []
    try:
        for record in state.records() if state else []:
            if record.status == "tagged" and record.probabilities and not record.reviewed:
                for tag, distance in uncertain_tags(record.probabilities, thresholds, margin):
                    entries.append((distance, record.path, tag, record.probabilities[tag]))
    finally:
        if state:
            state.close()
    entries.sort()
    rows = [[shown(p), tag, f"{prob:.4f}", f"{thresholds[tag]:.2f}", "yes" if prob >= thresholds[tag] else "no"]
            for _, p, tag, prob in entries]
    atomic_write(Path(path), csv_bytes(["file", "tag", "probability", "threshold", "tagged"], rows))
    return len({row[0] for row in rows})
