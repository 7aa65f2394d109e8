"""The core of ``terc-tag tag``: a tagged copy of a folder, incrementally.

discover -> decode (parallel threads) -> predict (batched, main thread) ->
write metadata into an atomic copy (a writer thread) -> record the outcome
(main thread) -> predictions.csv.

Originals are only ever read.  A photo that cannot be decoded or tagged is
still copied, byte for byte, so OUTPUT holds every photo of INPUT; the
summary names it with the reason.
"""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tagger.decode import batched, iter_decoded
from tagger.discover import discover
from tagger.metadata import MetadataError, add_keywords
from tagger.outputs import atomic_write, csv_bytes, is_inside, remove_stale_temporaries
from tagger.state import Record, RunLock, State

PREDICTIONS_CSV = "predictions.csv"


class FolderError(Exception):
    """INPUT or OUTPUT cannot be used; nothing was written."""


@dataclass
class Summary:
    input: Path
    output: Path
    model: str
    thresholds: dict[str, float]
    tagged: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    tag_counts: Counter = field(default_factory=Counter)
    pending: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def photos_per_second(self) -> float:
        done = len(self.tagged) + len(self.failed)
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "input": str(self.input), "output": str(self.output), "model": self.model,
            "thresholds": self.thresholds, "dry_run": self.dry_run,
            "tagged": len(self.tagged), "unchanged": self.unchanged, "pending": self.pending,
            "failed": [{"file": f, "reason": r} for f, r in self.failed],
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "tag_counts": dict(self.tag_counts), "seconds": round(self.seconds, 3),
            "photos_per_second": round(self.photos_per_second, 2),
        }


def check_folders(input_dir: Path, output_dir: Path, create: bool = True) -> None:
    """Refuse unusable folders with one clear line; create OUTPUT unless ``create`` is False (dry runs)."""
    if not input_dir.exists():
        raise FolderError(f"INPUT {input_dir} does not exist")
    if not input_dir.is_dir():
        raise FolderError(f"INPUT {input_dir} is not a folder")
    if is_inside(output_dir, input_dir):
        raise FolderError(f"OUTPUT {output_dir} is inside INPUT {input_dir}; choose a folder outside it")
    if is_inside(input_dir, output_dir):
        raise FolderError(f"INPUT {input_dir} is inside OUTPUT {output_dir}; choose a folder outside it")
    if output_dir.exists() and not output_dir.is_dir():
        raise FolderError(f"OUTPUT {output_dir} exists and is not a folder")
    if not create:
        return
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FolderError(f"cannot create OUTPUT {output_dir}: {exc.strerror}") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise FolderError(f"OUTPUT {output_dir} is not writable")


def _error_text(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "OUTPUT is full (no space left on device)"
    return exc.strerror or str(exc)


def tag_folder(input_dir, output_dir, session, *, threshold: float | str = 0.5, force: bool = False,
               dry_run: bool = False, batch_size: int = 32, workers: int | None = None,
               review_margin: float = 0.1, progress: bool = False) -> Summary:
    """Tag every new or changed photo of ``input_dir`` into a copy under ``output_dir``."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    thresholds = session.thresholds(threshold)
    summary = Summary(input_dir, output_dir, str(session.path),
                      dict(zip(session.vocabulary, map(float, thresholds))), dry_run=dry_run)
    started = time.perf_counter()
    check_folders(input_dir, output_dir, create=not dry_run)
    found = discover(input_dir)
    summary.skipped = [(str(p), reason) for p, reason in found.skipped]
    run_key = f"{session.model_id}:{threshold}"
    if dry_run:  # read what earlier runs did, write nothing
        state = State.existing(output_dir)
        summary.pending = len(_pending(found.photos, input_dir, output_dir, state, run_key, force, summary))
        if state:
            state.close()
        return summary

    with RunLock(output_dir):
        state = State(output_dir)
        try:
            pending = _pending(found.photos, input_dir, output_dir, state, run_key, force, summary)
            summary.pending = len(pending)
            remove_stale_temporaries(output_dir)
            writer = _BatchWriter(session.vocabulary, thresholds, input_dir, output_dir, dict(pending), run_key,
                                  summary)
            decoded = iter_decoded((input_dir / rel for rel, _ in pending), session.size, workers)
            # Batch k is written (metadata, fsync) in a thread while batch k+1 is predicted.
            with ThreadPoolExecutor(1, thread_name_prefix="write") as pool, \
                    tqdm(total=len(pending), unit="photo", disable=not progress, leave=False) as bar:
                in_flight = None
                for batch in batched(decoded, batch_size):
                    probabilities = _predict(session, batch)
                    if in_flight:
                        bar.update(_save(state, in_flight))
                    in_flight = pool.submit(writer.write, batch, probabilities)
                if in_flight:
                    bar.update(_save(state, in_flight))
            try:
                _write_predictions(output_dir, state, session.vocabulary, thresholds, review_margin)
            except OSError as exc:  # the state is safe; the next run writes it again
                summary.failed.append((PREDICTIONS_CSV, f"cannot write to OUTPUT: {_error_text(exc)}"))
        finally:
            state.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _pending(photos, input_dir, output_dir, state, run_key, force, summary) -> list[tuple[Path, os.stat_result]]:
    pending = []
    for rel in photos:
        try:
            st = (input_dir / rel).stat()
        except OSError as exc:
            summary.failed.append((str(rel), f"cannot read: {exc.strerror}"))
            continue
        if not force and state and state.is_done(str(rel), st.st_size, st.st_mtime_ns, run_key) and (output_dir / rel).exists():
            summary.unchanged += 1
        else:
            pending.append((rel, st))
    return pending


def _predict(session, batch) -> list:
    """Probabilities for each decoded photo of ``batch``; None where it could not be decoded."""
    good = [i for i, item in enumerate(batch) if item.pixels is not None]
    result = [None] * len(batch)
    if good:
        for i, p in zip(good, session.predict(np.stack([batch[i].pixels for i in good]))):
            result[i] = p
    return result


def _save(state: State, written) -> int:
    records = written.result()
    state.save(records)
    return len(records)


@dataclass
class _BatchWriter:
    """Stage 4 for one batch: merge tags into each photo's bytes and write the copy."""

    vocabulary: list[str]
    thresholds: np.ndarray
    input_dir: Path
    output_dir: Path
    stats: dict
    run_key: str
    summary: Summary

    def write(self, batch, probabilities) -> list[Record]:
        return [self._write_one(item, p) for item, p in zip(batch, probabilities)]

    def _write_one(self, item, p) -> Record:
        rel = item.path.relative_to(self.input_dir)
        tags, error, output = [], item.error, item.data
        if p is not None:
            tags = [tag for tag, prob, t in zip(self.vocabulary, p, self.thresholds) if prob >= t]
            try:
                output = add_keywords(item.data, tags)
            except MetadataError as exc:
                error = str(exc)
        if output is not None:  # copy even a failed photo, so OUTPUT holds every photo
            try:
                atomic_write(self.output_dir / rel, output)
                if error:
                    error += " (copied unchanged)"
            except OSError as exc:
                error = f"cannot write to OUTPUT: {_error_text(exc)}"
        if error:
            self.summary.failed.append((str(rel), error))
        else:
            self.summary.tagged.append(str(rel))
            self.summary.tag_counts.update(tags)
        st = self.stats[rel]
        return Record(str(rel), st.st_size, st.st_mtime_ns, self.run_key, "failed" if error else "tagged",
                      dict(zip(self.vocabulary, map(float, p))) if p is not None else None,
                      tags if not error else [], error)


def uncertain_tags(probabilities: dict[str, float], thresholds: dict[str, float], margin: float) -> list[tuple[str, float]]:
    """Tags whose probability lies within ``margin`` of their threshold, closest first."""
    near = [(tag, abs(p - thresholds[tag])) for tag, p in probabilities.items()
            if tag in thresholds and abs(p - thresholds[tag]) < margin]
    return sorted(near, key=lambda item: item[1])


def _write_predictions(output_dir, state, vocabulary, thresholds, margin) -> None:
    limits = dict(zip(vocabulary, map(float, thresholds)))
    rows = []
    for record in state.records():
        if record.status != "tagged" or record.probabilities is None:
            continue
        probs = record.probabilities
        near = uncertain_tags(probs, limits, margin)
        rows.append([record.path] + [f"{probs[t]:.4f}" if t in probs else "" for t in vocabulary]
                    + [";".join(record.tags), ";".join(t for t, _ in near)])
    atomic_write(output_dir / PREDICTIONS_CSV, csv_bytes(["file", *vocabulary, "tags", "uncertain"], rows))


def write_review(path: Path, output_dir: Path, thresholds: dict[str, float], margin: float) -> int:
    """Write the photos a person should check, most uncertain first; return how many."""
    state = State(output_dir)
    try:
        entries = []
        for record in state.records():
            if record.status == "tagged" and record.probabilities:
                for tag, distance in uncertain_tags(record.probabilities, thresholds, margin):
                    entries.append((distance, record.path, tag, record.probabilities[tag]))
    finally:
        state.close()
    entries.sort()
    rows = [[p, tag, f"{prob:.4f}", f"{thresholds[tag]:.2f}", "yes" if prob >= thresholds[tag] else "no"]
            for _, p, tag, prob in entries]
    atomic_write(Path(path), csv_bytes(["file", "tag", "probability", "threshold", "tagged"], rows))
    return len({row[0] for row in rows})
