"""The core of ``terc-tag tag``: a tagged copy of a folder, incrementally.

discover -> plan (what is new or changed) -> decode (``read_and_decode``)
-> predict -> write metadata into an atomic copy -> record the outcomes ->
predictions.csv.  The stages are :mod:`tagger.tagging.stages`; an engine runs them,
passed in as an object: :class:`LocalEngine` (decoding in threads, prediction
in this thread, writing in a writer thread) or
:class:`tagger.tagging.ray_engine.RayEngine` (across a cluster), which this module
never imports.

Originals are only ever read.  A photo that cannot be decoded or tagged is
still copied, byte for byte, so OUTPUT holds every photo of INPUT; the
summary names it with the reason.  It is then a *known failure*: until the
file changes (size or modification time), later runs neither retry nor
report it as new, so a cron job mails about it once.

A run that finds nothing new loads no model and writes nothing: the plan
is first made from a read-only look at the state.

However a run with work ends, it ends the same way: a signal (:class:`Stopped`,
or ``KeyboardInterrupt``) or a full disk (:class:`NoSpace`) stops it after
the batch being written is recorded, then ``predictions.csv`` is written for
every photo finished, and :attr:`Summary.ended` says how it ended.  Copies
are written atomically, so a stopped run leaves no half-written photo, and
the next run tags whatever was left.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from tagger import sessions
from tagger.decode import Decoded, batched, iter_decoded
from tagger.discover import discover, is_within, open_folder, stat_inside
from tagger.errors import TercTagError, no_space
from tagger.outputs import Reserve, clear_scattered_temporaries, clear_temporaries, folder_mode
from tagger.state import EditLock, RunLock, Seen, State, state_file
from tagger.tagging.predictions import PREDICTIONS_CSV, write_predictions
from tagger.tagging.stages import (
    Job,
    NoSpace,
    Summary,
    WriteContext,
    commit,
    error_text,
    predict_batch,
    write_batch,
)


class FolderError(TercTagError):
    """INPUT or OUTPUT cannot be used; nothing was written."""


class Stopped(BaseException):
    """A signal asked the run to stop (raised by the command line's handler, like ``KeyboardInterrupt``)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def check_folders(input_dir: Path, output_dir: Path, create: bool = True) -> None:
    """Refuse unusable folders with one clear line; create OUTPUT unless ``create`` is False (dry runs)."""
    if not input_dir.exists():
        raise FolderError(f"INPUT {input_dir} does not exist")
    if not input_dir.is_dir():
        raise FolderError(f"INPUT {input_dir} is not a folder")
    real_input, real_output = os.path.realpath(input_dir), os.path.realpath(output_dir)
    if is_within(real_output, real_input):
        raise FolderError(f"OUTPUT {output_dir} is inside INPUT {input_dir}; choose a folder outside it")
    if is_within(real_input, real_output):
        raise FolderError(f"INPUT {input_dir} is inside OUTPUT {output_dir}; choose a folder outside it")
    if output_dir.exists() and not output_dir.is_dir():
        raise FolderError(f"OUTPUT {output_dir} exists and is not a folder")
    if not create:
        return
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(output_dir, folder_mode(input_dir))  # at most what INPUT grants
    except FileExistsError:
        pass
    except OSError as exc:
        if no_space(exc):
            raise NoSpace(output_dir, code=exc.errno or errno.ENOSPC) from None
        raise FolderError(f"cannot create OUTPUT {output_dir}: {exc.strerror}") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise FolderError(f"OUTPUT {output_dir} is not writable")


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    unchanged: int = 0
    known_failures: list[tuple[str, str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    codes_missing: int = 0
    predictions_missing: bool = False

    @property
    def has_work(self) -> bool:
        return bool(self.jobs or self.predictions_missing)


@dataclass(frozen=True)
class TagOptions:
    """How ``tag`` runs, as its command-line options say (``tag_folder`` takes them as keywords)."""

    threshold: float | str | None = None  # None: the model's default; "calibrated": the card's per-tag ones
    force: bool = False  # tag photos done before too
    retry_failed: bool = False  # retry known failures
    add_codes: bool = False  # code the photos tagged before the model had a code map
    dry_run: bool = False  # plan, report, write nothing
    follow_symlinks: bool = False
    batch_size: int = 32
    review_margin: float = 0.1
    progress: bool = False


class Engine(Protocol):
    """Runs the planned jobs through :mod:`tagger.tagging.stages` and records each batch with ``commit``."""

    def run(self, jobs: list[Job], model: Any, context: WriteContext, state: State, summary: Summary,
            options: TagOptions) -> None: ...


def tag_folder(input_dir: str | os.PathLike, output_dir: str | os.PathLike, model: Any, engine: Engine | None = None,
               **options: Any) -> Summary:
    """Tag every new or changed photo of ``input_dir`` into a copy under ``output_dir``.

    ``model`` is a :class:`tagger.bundle.Bundle`, loaded only if some photo
    needs tagging, or an already loaded session.  When it has a code map,
    every photo tagged gets its similarity code from the same forward pass;
    ``add_codes`` also codes the photos tagged by this model before it had
    its code map (no photo is rewritten).  ``options``: the fields of
    :class:`TagOptions`.

    ``engine``: :class:`LocalEngine` (threads in this process; the default)
    or :class:`tagger.tagging.ray_engine.RayEngine` (a Ray Data job).  Both run the
    same stage functions: :func:`tagger.decode.read_and_decode`,
    :func:`tagger.tagging.stages.predict_batch`, :func:`~tagger.tagging.stages.write_batch`
    and :func:`~tagger.tagging.stages.commit`.
    """
    settings, engine = TagOptions(**options), engine or LocalEngine()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    threshold, dry_run = settings.threshold, settings.dry_run
    thresholds = model.thresholds(threshold)
    summary = Summary(input_dir, output_dir, str(model.path),
                      dict(zip(model.vocabulary, map(float, thresholds), strict=True)), dry_run=dry_run)
    started = time.perf_counter()
    check_folders(input_dir, output_dir, create=not dry_run)
    found = discover(input_dir, settings.follow_symlinks)
    summary.skipped = [(str(p), reason) for p, reason in found.skipped]
    # Keyed by the choice as the user would have typed it: the model's default is the number it stands for,
    # so that an OUTPUT tagged with "--threshold 0.5" by 0.3 is not re-tagged now that 0.5 is the default.
    run_key = f"{model.model_id}:{model.default_threshold if threshold is None else threshold}"

    def plan_with(seen: dict[str, Seen]) -> Plan:
        plan = _plan(found.photos, input_dir, output_dir, seen, run_key, model.codes_id, settings)
        summary.pending, summary.unchanged, summary.codes_missing = len(plan.jobs), plan.unchanged, plan.codes_missing
        summary.known_failures, summary.failed = plan.known_failures, list(plan.unreadable)
        return plan

    plan = plan_with(_read_only_index(output_dir))
    if dry_run or not plan.has_work:  # nothing new: no model, no lock, no write
        summary.seconds = time.perf_counter() - started
        return summary

    with RunLock(output_dir), Reserve(output_dir) as reserve:
        try:
            state = State(output_dir)
        except sqlite3.OperationalError as exc:
            raise (NoSpace(state_file(output_dir)) if no_space(exc) else exc) from None
        try:
            if state.migrated_from == 1:  # terc-tag 0.1 kept its temporaries beside the photos
                clear_scattered_temporaries(output_dir)
            clear_temporaries(output_dir)
            plan = plan_with(state.index())  # again, under the lock: another run may have finished meanwhile
            if plan.jobs:
                context = WriteContext(list(model.vocabulary), model.single_label, thresholds, input_dir, output_dir,
                                       run_key, model.codes_id)
                try:
                    engine.run(plan.jobs, model, context, state, summary, settings)
                except (Stopped, KeyboardInterrupt) as exc:
                    summary.ended = exc.args[0] if isinstance(exc, Stopped) else "SIGINT"
                    summary.stop_reason = f"{summary.ended} received"
                except NoSpace as exc:
                    summary.ended, summary.stop_reason = "no space", str(exc)
                    reserve.release()  # room to record the photos written before the disk filled
                    if exc.unrecorded:
                        try:
                            commit(state, exc.unrecorded, summary)
                        except NoSpace:
                            pass
            _write_predictions(output_dir, state, model, thresholds, settings.review_margin, summary, reserve)
        finally:
            state.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _write_predictions(output_dir: Path, state: State, model: Any, thresholds: np.ndarray, review_margin: float,
                       summary: Summary, reserve: Reserve) -> None:
    """``predictions.csv`` for every photo finished (on a full disk, with the reserve's space).

    The state is safe if it cannot be written: a stale file is removed, so
    that the next run writes it again.
    """
    for _ in range(2):
        try:
            with EditLock(output_dir):  # a correction rewrites its rows meanwhile
                write_predictions(output_dir, state, model.vocabulary, thresholds, review_margin)
            return
        except OSError as exc:
            error = exc
            if not (no_space(exc) and reserve.release()):
                break
    summary.failed.append((PREDICTIONS_CSV, f"cannot write to OUTPUT: {error_text(error)}"))
    (output_dir / PREDICTIONS_CSV).unlink(missing_ok=True)
    if no_space(error) and summary.ended == "finished":
        full = NoSpace(output_dir / PREDICTIONS_CSV, code=error.errno or errno.ENOSPC)
        summary.ended, summary.stop_reason = "no space", str(full)


def _read_only_index(output_dir: Path) -> dict[str, Seen]:
    """What earlier runs did, read without writing; empty if unknown, so that the run plans again under the lock."""
    try:
        with State.reading(output_dir) as state:
            return state.index() if state else {}
    except sqlite3.DatabaseError:  # e.g. read while another run checkpoints
        return {}


@dataclass(frozen=True)
class LocalEngine:
    """Decode in threads (``workers``), predict here, write and record each batch in a writer thread."""

    workers: int | None = None

    def run(self, jobs: list[Job], model: Any, context: WriteContext, state: State, summary: Summary,
            options: TagOptions) -> None:
        session = sessions.load_session(model)
        by_path = {job.rel: job for job in jobs}
        decoded = iter_decoded(context.input_dir, [job.rel for job in jobs], session.size, self.workers,
                               follow_symlinks=options.follow_symlinks)

        def write_and_record(batch: list[Decoded], probabilities: list, codes: list) -> int:
            commit(state, write_batch(context, [by_path[item.path] for item in batch], batch, probabilities, codes),
                   summary)
            return len(batch)

        # Batch k is written (metadata, fsync, state) in a thread while batch k+1 is predicted.  Stopped
        # (a signal, a full disk), the batch being written is finished and recorded, and decoding stops.
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="write") as pool, \
                    tqdm(total=len(jobs), unit="photo", disable=not options.progress, leave=False) as bar:
                in_flight = None
                for batch in batched(decoded, options.batch_size):
                    probabilities, codes = predict_batch(session, batch)
                    if in_flight:
                        bar.update(in_flight.result())
                    in_flight = pool.submit(write_and_record, batch, probabilities, codes)
                if in_flight:
                    bar.update(in_flight.result())
        finally:
            decoded.close()


def _plan(photos: list[Path], input_dir: Path, output_dir: Path, seen: dict[str, Seen], run_key: str,
          code_key: str | None, options: TagOptions) -> Plan:
    """Which photos to tag: new ones, changed ones (size or mtime), and those tagged by another model.

    A photo tagged by this model whose similarity code is missing or from another code map is left as
    it is and counted, or, with ``add_codes``, planned for its code alone.

    A kept copy that grants more than its original is narrowed on the way (a dry run changes nothing).
    """
    narrow = not options.dry_run
    plan = Plan(predictions_missing=any(s.status == "tagged" for s in seen.values())
                and not (output_dir / PREDICTIONS_CSV).is_file())
    for rel in photos:
        try:
            st = stat_inside(input_dir, rel, options.follow_symlinks)
        except OSError as exc:
            plan.unreadable.append((str(rel), f"cannot read: {exc.strerror}"))
            continue
        before = seen.get(str(rel))
        same_file = before is not None and (before.size, before.mtime_ns) == (st.st_size, st.st_mtime_ns)
        if before is not None and same_file and not options.force:
            if before.status == "tagged" and before.run_key == run_key and _copy_kept(output_dir, rel, st, narrow):
                if code_key and before.code_key != code_key:
                    if options.add_codes:
                        plan.jobs.append(Job(rel, st, codes_only=True))
                        continue
                    plan.codes_missing += 1
                plan.unchanged += 1
                continue
            if before.status == "failed" and before.first_failed and not options.retry_failed:
                _copy_kept(output_dir, rel, st, narrow)
                plan.known_failures.append((str(rel), before.error or "", before.first_failed))
                continue
        failed_before = before is not None and same_file and before.status == "failed"
        plan.jobs.append(Job(rel, st, before.first_failed if before is not None and failed_before else None))
    return plan


def _copy_kept(output_dir: Path, rel: Path, source: os.stat_result, narrow: bool) -> bool:
    """Whether OUTPUT still holds the copy of ``rel``; with ``narrow``, with no permission its original lacks.

    Copies written before terc-tag 0.2, or before their original was made
    private, may grant more: they are narrowed here, and a copy that cannot
    be narrowed is redone.
    """
    try:
        mode = stat_inside(output_dir, rel).st_mode & 0o777
        if narrow and mode & ~source.st_mode:
            parts = Path(rel).parts
            folder = open_folder(output_dir, parts[:-1])  # any depth
            try:
                os.chmod(parts[-1], mode & source.st_mode & 0o777, dir_fd=folder)
            finally:
                os.close(folder)
        return True
    except OSError:
        return False


