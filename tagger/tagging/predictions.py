"""Stage 5: the state as files people read: ``predictions.csv`` and the ``--review`` CSV.

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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tagger.names import shown
from tagger.outputs import atomic_write, csv_bytes, from_spreadsheet_text, temp_folder
from tagger.state import Record, State

PREDICTIONS_CSV = "predictions.csv"


def uncertain_tags(probabilities: dict[str, float], thresholds: dict[str, float],
                   margin: float) -> list[tuple[str, float]]:
    """Tags whose probability lies within ``margin`` of their threshold, closest first."""
    near = [(tag, abs(p - thresholds[tag])) for tag, p in probabilities.items()
            if tag in thresholds and abs(p - thresholds[tag]) < margin]
    return sorted(near, key=lambda item: item[1])


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
    entries = []
    with State.reading(output_dir) as state:
        for record in state.records() if state else []:
            if record.status == "tagged" and record.probabilities and not record.reviewed:
                for tag, distance in uncertain_tags(record.probabilities, thresholds, margin):
                    entries.append((distance, record.path, tag, record.probabilities[tag]))
    entries.sort()
    rows = [[shown(p), tag, f"{prob:.4f}", f"{thresholds[tag]:.2f}", "yes" if prob >= thresholds[tag] else "no"]
            for _, p, tag, prob in entries]
    atomic_write(Path(path), csv_bytes(["file", "tag", "probability", "threshold", "tagged"], rows))
    return len({row[0] for row in rows})
