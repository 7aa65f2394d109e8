"""The stages both engines run, as plain functions over plain data: predict, write, record.

:func:`predict_batch` (stage 3), :func:`write_batch` (stage 4: tags merged into
each photo's bytes, an atomic copy in OUTPUT) and :func:`commit` (stage 5's
bookkeeping: the outcomes recorded in the state, counted in the
:class:`Summary`).  The local engine (:mod:`tagger.tagging.pipeline`) runs them in
threads, the Ray engine (:mod:`tagger.tagging.ray_engine`) across a cluster; neither
imports the other.  A full disk anywhere here is a :class:`NoSpace`.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tagger.bundle import decide
from tagger.decode import Decoded
from tagger.errors import EXIT_NO_SPACE, NO_SPACE_ERRNOS, TercTagError, no_space
from tagger.metadata import MetadataError, edit_keywords
from tagger.names import shown
from tagger.outputs import atomic_write, make_folders, temp_folder
from tagger.sessions import predict_decoded
from tagger.state import CodeUpdate, EditLock, Record, State, state_file


class NoSpace(TercTagError, OSError):
    """No space left (ENOSPC, EDQUOT) where OUTPUT's files go; ``filename`` says where.

    ``unrecorded``: outcomes of photos written whose rows the state could not take.
    """

    exit_code = EXIT_NO_SPACE

    def __init__(self, path: str | os.PathLike, unrecorded: list | None = None, code: int = errno.ENOSPC):
        super().__init__(code, os.strerror(code).lower(), str(path))
        self.unrecorded = unrecorded or []

    def __str__(self) -> str:
        return f"{self.strerror} for {self.filename}"


@dataclass
class Summary:
    input: Path
    output: Path
    model: str
    thresholds: dict[str, float]
    tagged: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    known_failures: list[tuple[str, str, str]] = field(default_factory=list)  # file, reason, first failed
    partly_tagged: list[tuple[str, str]] = field(default_factory=list)  # file, the fields left alone and why
    codes_added: int = 0  # photos tagged before that got a similarity code this run (--add-codes)
    codes_missing: int = 0  # photos tagged before whose similarity code is missing or from another code map
    reviewed_kept: int = 0  # photos a person reviewed: predicted again, their tags kept
    skipped: list[tuple[str, str]] = field(default_factory=list)
    tag_counts: Counter = field(default_factory=Counter)
    pending: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    ended: str = "finished"  # or the signal that stopped it (SIGINT, SIGTERM, SIGHUP), or "no space"
    stop_reason: str | None = None  # one line on why it stopped early

    def add(self, outcome: Outcome) -> None:
        """Count one photo's outcome of stage 4 (one not written for want of space is the stop's, not a failure)."""
        if outcome.failure and not outcome.no_space and not outcome.retry:
            self.failed.append((outcome.rel, outcome.failure))
        if isinstance(outcome.record, CodeUpdate):
            self.codes_added += 1
        elif outcome.reviewed_kept:
            self.reviewed_kept += 1
        elif outcome.record is not None and outcome.record.status == "tagged":
            self.tagged.append(outcome.rel)
            self.tag_counts.update(outcome.record.tags)
            if outcome.notes:
                self.partly_tagged.append((outcome.rel, outcome.notes))

    @property
    def photos_per_second(self) -> float:
        done = len(self.tagged) + len(self.failed)
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        """For JSON: every name and reason as :func:`tagger.names.shown` gives it (``unshown`` gives names back)."""
        def files(rows: list[tuple[str, str]]) -> list[dict[str, str]]:
            return [{"file": shown(f), "reason": shown(r)} for f, r in rows]

        return {
            "ended": self.ended, "stop_reason": self.stop_reason,
            "input": shown(self.input), "output": shown(self.output), "model": shown(self.model),
            "thresholds": self.thresholds, "dry_run": self.dry_run,
            "tagged": len(self.tagged), "unchanged": self.unchanged, "pending": self.pending,
            "failed": files(self.failed),
            "known_failures": [{"file": shown(f), "reason": shown(r), "first_failed": t}
                               for f, r, t in self.known_failures],
            "partly_tagged": files(self.partly_tagged),
            "codes_added": self.codes_added, "codes_missing": self.codes_missing,
            "reviewed_kept": self.reviewed_kept,
            "skipped": files(self.skipped),
            "tag_counts": dict(self.tag_counts), "seconds": round(self.seconds, 3),
            "photos_per_second": round(self.photos_per_second, 2),
        }


def error_text(exc: OSError) -> str:
    if exc.errno in NO_SPACE_ERRNOS:
        return f"OUTPUT is full ({os.strerror(exc.errno).lower()})"
    return exc.strerror or str(exc)



@dataclass
class Job:
    """A photo to tag in this run."""

    rel: Path
    stat: os.stat_result
    first_failed: str | None = None  # when this same version of the file failed before (--retry-failed)
    codes_only: bool = False  # tagged by this model already: compute its similarity code, rewrite nothing



def predict_batch(session: Any, batch: list[Decoded]) -> tuple[list, list]:
    """Stage 3: probabilities and code for each decoded photo of ``batch``; None where it could not be decoded."""
    good = [i for i, item in enumerate(batch) if item.pixels is not None]
    probabilities: list[np.ndarray | None] = [None] * len(batch)
    codes: list[bytes | None] = [None] * len(batch)
    if good:
        decoded = [batch[i] for i in good]
        p, words = predict_decoded(session, decoded)
        for row, i in enumerate(good):
            probabilities[i] = p[row]
            codes[i] = words[row].astype("<u8").tobytes() if words is not None else None
    return probabilities, codes


@dataclass(frozen=True)
class WriteContext:
    """What stage 4 needs to know of a run: plain data, so that it travels to other processes."""

    vocabulary: list[str]
    single_label: bool
    thresholds: np.ndarray
    input_dir: Path
    output_dir: Path
    run_key: str
    code_key: str | None

    def tags(self, probabilities: np.ndarray) -> list[str]:
        return decide(self.vocabulary, self.single_label, probabilities, self.thresholds)


@dataclass
class Outcome:
    """Stage 4's result for one photo: what to record in the state, and what to report."""

    rel: str
    record: Record | CodeUpdate | None  # None: OUTPUT could not take it (not the photo's fault: retried next run)
    failure: str | None = None
    notes: str | None = None  # fields left alone (partly tagged)
    reviewed_kept: bool = False  # a photo a person reviewed: predicted again, copy and tags kept
    no_space: int = 0  # ENOSPC or EDQUOT: its copy found no space, and the run stops after this batch
    retry: bool = False  # not done, through no fault of the photo's (it changed meanwhile): the next run does it


def write_batch(context: WriteContext, jobs: list[Job], batch: list[Decoded], probabilities: list,
                codes: list) -> list[Outcome]:
    """Stage 4 for one batch: merge tags into each photo's bytes and write the copies.

    Under the :class:`EditLock`, and with the state read then: a photo a
    person reviewed (even during this run) keeps the tags they gave it.
    """
    with EditLock(context.output_dir):
        with State.reading(context.output_dir) as state:
            return [write_photo(context, job, item, p, code, _reviewed(state, item.path))
                    for job, item, p, code in zip(jobs, batch, probabilities, codes, strict=True)]


def _reviewed(state: State | None, rel: Path) -> Record | None:
    record = state.get(str(rel)) if state else None
    return record if record is not None and record.reviewed and record.status == "tagged" else None


def write_photo(context: WriteContext, job: Job, item: Decoded, p: np.ndarray | None, code: bytes | None,
                reviewed: Record | None) -> Outcome:
    """One photo of stage 4: its copy in OUTPUT (tagged, or byte for byte where it failed) and its record."""
    rel = str(item.path)
    if job.codes_only:
        if code is None:
            return Outcome(rel, None, f"no similarity code: {item.error}")
        return Outcome(rel, CodeUpdate(rel, code, context.code_key or ""))
    st = item.stat or job.stat  # the version actually read, where it was read
    probabilities = dict(zip(context.vocabulary, map(float, p), strict=True)) if p is not None else None
    code_key = context.code_key if code else None
    if p is not None and reviewed is not None and (reviewed.size, reviewed.mtime_ns) == (st.st_size, st.st_mtime_ns) \
            and (context.output_dir / rel).is_file():  # the same photo: new probabilities; its tags and copy stay
        return Outcome(rel, replace(reviewed, run_key=context.run_key, probabilities=probabilities, code=code,
                                    code_key=code_key), reviewed_kept=True)
    tags: list[str] = []
    written: list[str] = []
    notes: list[str] = []
    error, output = item.error, item.data
    if p is not None and item.data is not None:  # decoded, so read
        # A new version of a reviewed photo gets the person's tags, not the model's.
        tags = reviewed.tags if reviewed else context.tags(p)
        try:
            output, notes, had = edit_keywords(item.data, tags)
            present = {word.casefold() for word in had}
            written = [tag for tag in tags if tag.casefold() not in present]
        except MetadataError as exc:
            error = str(exc)
    if output is not None:  # copy even a failed photo, so OUTPUT holds every photo
        try:
            make_folders(context.output_dir, Path(rel).parent, context.input_dir)
            atomic_write(context.output_dir / rel, output, st.st_mode & 0o777, temp_folder(context.output_dir))
        except OSError as exc:
            return Outcome(rel, None, f"cannot write to OUTPUT: {error_text(exc)}",
                           no_space=(exc.errno or errno.ENOSPC) if no_space(exc) else 0)
        if error:
            error += " (copied unchanged)"
    if error:
        first = job.first_failed or datetime.now(timezone.utc).isoformat(timespec="seconds")
        return Outcome(rel, Record(rel, st.st_size, st.st_mtime_ns, context.run_key, "failed", probabilities, [],
                                   error, first), error)
    return Outcome(rel, Record(rel, st.st_size, st.st_mtime_ns, context.run_key, "tagged", probabilities, tags, None,
                               code=code, code_key=code_key, written=written,
                               reviewed=reviewed.reviewed if reviewed else None), notes="; ".join(notes) or None)


def commit(state: State, outcomes: list[Outcome], summary: Summary) -> None:
    """Stage 5's bookkeeping: record a batch's outcomes in the state (under the :class:`EditLock`) and count them.

    A photo a person reviewed after its copy was written keeps that review:
    the correction rewrote the copy last, so only the new probabilities are
    taken; one handed back to the model meanwhile stays handed back.
    Raises :class:`NoSpace` once the batch is recorded if a copy, or the
    state itself, found no space.
    """
    with EditLock(state.output):
        records, codes, counted = [], [], []
        for outcome in outcomes:
            record = outcome.record
            if isinstance(record, CodeUpdate):
                codes.append(record)
            elif record is not None:
                now = state.get(outcome.rel)
                if now is not None and now.reviewed and now.reviewed != record.reviewed:
                    record = replace(now, run_key=record.run_key, probabilities=record.probabilities,
                                     code=record.code, code_key=record.code_key)
                    outcome = replace(outcome, record=record, reviewed_kept=True)
                elif now is not None and record.reviewed and not now.reviewed and not now.run_key:
                    # handed back to the model meanwhile: the next run tags it, as the person asked
                    record = replace(now, probabilities=record.probabilities, code=record.code,
                                     code_key=record.code_key)
                records.append(record)
            counted.append(outcome)
        full = next((o for o in outcomes if o.no_space), None)  # the first write that failed
        try:
            state.save(records)
            state.save_codes(codes)
        except sqlite3.OperationalError as exc:  # nothing of the batch recorded: the next run redoes it
            if not no_space(exc):
                raise
            if full is None:
                raise NoSpace(state_file(state.output), outcomes) from None
            raise NoSpace(state.output / full.rel, outcomes, full.no_space) from None
    for outcome in counted:
        summary.add(outcome)
    if full is not None:
        raise NoSpace(state.output / full.rel, code=full.no_space)
