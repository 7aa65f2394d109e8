"""The core of ``terc-tag tag``: a tagged copy of a folder, incrementally.

discover -> plan (what is new or changed) -> decode (``read_and_decode``)
-> predict (``predict_batch``) -> write metadata into an atomic copy
(``write_batch``) -> record the outcomes (``commit``) -> predictions.csv.
The local engine runs decoding in threads, prediction in this thread and
writing in a writer thread; the Ray engine (``tagger.ray_engine``) runs the
same functions across a cluster.

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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tagger.bundle import decide
from tagger.decode import batched, iter_decoded
from tagger.discover import discover, open_folder, stat_inside
from tagger.metadata import MetadataError, edit_keywords
from tagger.names import shown
from tagger.outputs import (Reserve, atomic_write, clear_scattered_temporaries, clear_temporaries, folder_mode,
                            is_inside, make_folders, temp_folder)
from tagger.predictions import PREDICTIONS_CSV, write_predictions
from tagger import sessions
from tagger.state import CodeUpdate, EditLock, Record, RunLock, Seen, State


class FolderError(Exception):
    """INPUT or OUTPUT cannot be used; nothing was written."""


class Stopped(BaseException):
    """A signal asked the run to stop (raised by the command line's handler, like ``KeyboardInterrupt``)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: Errors of a disk, or a user's quota, with no room left: the run stops, since every next write would fail too.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class NoSpace(OSError):
    """No space left (ENOSPC, EDQUOT) where OUTPUT's files go; ``filename`` says where.

    ``unrecorded``: outcomes of photos written whose rows the state could not take.
    """

    def __init__(self, path, unrecorded: list | None = None, code: int = errno.ENOSPC):
        super().__init__(code, os.strerror(code).lower(), str(path))
        self.unrecorded = unrecorded or []

    def __str__(self) -> str:
        return f"{self.strerror} for {self.filename}"


def no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or quota) is full: an OSError, or SQLite's 'database or disk is full'."""
    if isinstance(exc, OSError):
        return exc.errno in NO_SPACE_ERRNOS
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)


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

    def add(self, outcome: "Outcome") -> None:
        """Count one photo's outcome of stage 4 (one not written for want of space is the stop's, not a failure)."""
        if outcome.failure and not outcome.no_space:
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
        def files(rows):
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
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(output_dir, folder_mode(input_dir))  # at most what INPUT grants
    except FileExistsError:
        pass
    except OSError as exc:
        if no_space(exc):
            raise NoSpace(output_dir, code=exc.errno) from None
        raise FolderError(f"cannot create OUTPUT {output_dir}: {exc.strerror}") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise FolderError(f"OUTPUT {output_dir} is not writable")


def _error_text(exc: OSError) -> str:
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


def tag_folder(input_dir, output_dir, model, *, threshold: float | str | None = None, force: bool = False,
               retry_failed: bool = False, add_codes: bool = False, dry_run: bool = False,
               follow_symlinks: bool = False,
               batch_size: int = 32, workers: int | None = None, review_margin: float = 0.1,
               progress: bool = False, engine: str = "local", **engine_options) -> Summary:
    """Tag every new or changed photo of ``input_dir`` into a copy under ``output_dir``.

    ``model`` is a :class:`tagger.bundle.Bundle`, loaded only if some photo
    needs tagging, or an already loaded :class:`tagger.model.TaggerSession`.
    When it has a code map, every photo tagged gets its similarity code from
    the same forward pass; ``add_codes`` also codes the photos tagged by this
    model before it had its code map (no photo is rewritten).

    ``engine``: ``local`` (threads in this process) or ``ray`` (a Ray Data
    job, :mod:`tagger.ray_engine`; ``engine_options`` such as ``address``).
    Both run the same stage functions: :func:`tagger.decode.read_and_decode`,
    :func:`predict_batch`, :func:`write_batch` and :func:`commit`.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    thresholds = model.thresholds(threshold)
    summary = Summary(input_dir, output_dir, str(model.path),
                      dict(zip(model.vocabulary, map(float, thresholds))), dry_run=dry_run)
    started = time.perf_counter()
    check_folders(input_dir, output_dir, create=not dry_run)
    found = discover(input_dir, follow_symlinks)
    summary.skipped = [(str(p), reason) for p, reason in found.skipped]
    # Keyed by the choice as the user would have typed it: the model's default is the number it stands for,
    # so that an OUTPUT tagged with "--threshold 0.5" by 0.3 is not re-tagged now that 0.5 is the default.
    run_key = f"{model.model_id}:{model.default_threshold if threshold is None else threshold}"

    def plan_with(seen: dict[str, Seen]) -> Plan:
        plan = _plan(found.photos, input_dir, output_dir, seen, run_key, model.codes_id, force=force,
                     retry_failed=retry_failed, add_codes=add_codes, follow_symlinks=follow_symlinks,
                     narrow=not dry_run)
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
            raise (NoSpace(_state_path(output_dir)) if no_space(exc) else exc) from None
        try:
            if state.migrated_from == 1:  # terc-tag 0.1 kept its temporaries beside the photos
                clear_scattered_temporaries(output_dir)
            clear_temporaries(output_dir)
            plan = plan_with(state.index())  # again, under the lock: another run may have finished meanwhile
            if plan.jobs:
                context = WriteContext(list(model.vocabulary), model.single_label, thresholds, input_dir, output_dir,
                                       run_key, model.codes_id)
                run = _tag_jobs if engine == "local" else _ray_engine().tag_jobs
                try:
                    run(plan.jobs, model, context, state, summary, follow_symlinks=follow_symlinks,
                        batch_size=batch_size, workers=workers, progress=progress, **engine_options)
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
            _write_predictions(output_dir, state, model, thresholds, review_margin, summary, reserve)
        finally:
            state.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _write_predictions(output_dir: Path, state: State, model, thresholds, review_margin: float,
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
    summary.failed.append((PREDICTIONS_CSV, f"cannot write to OUTPUT: {_error_text(error)}"))
    (output_dir / PREDICTIONS_CSV).unlink(missing_ok=True)
    if no_space(error) and summary.ended == "finished":
        summary.ended, summary.stop_reason = "no space", str(NoSpace(output_dir / PREDICTIONS_CSV, code=error.errno))


def _state_path(output_dir: Path) -> Path:
    return Path(output_dir) / ".terc-tag" / "state.sqlite"


def _read_only_index(output_dir: Path) -> dict[str, Seen]:
    """What earlier runs did, read without writing; empty if unknown, so that the run plans again under the lock."""
    try:
        state = State.reader(output_dir)
        if state is None:
            return {}
        try:
            return state.index()
        finally:
            state.close()
    except sqlite3.DatabaseError:  # e.g. read while another run checkpoints
        return {}


def _ray_engine():
    from tagger import ray_engine

    return ray_engine


def _tag_jobs(jobs, model, context, state, summary, *, follow_symlinks, batch_size, workers, progress) -> None:
    """The local engine: decode in threads, predict here, write and record each batch in a writer thread."""
    session = sessions.load_session(model)
    by_path = {job.rel: job for job in jobs}
    decoded = iter_decoded(context.input_dir, [job.rel for job in jobs], session.size, workers,
                           follow_symlinks=follow_symlinks)

    def write_and_record(batch, probabilities, codes) -> int:
        commit(state, write_batch(context, [by_path[item.path] for item in batch], batch, probabilities, codes),
               summary)
        return len(batch)

    # Batch k is written (metadata, fsync, state) in a thread while batch k+1 is predicted.  Stopped
    # (a signal, a full disk), the batch being written is finished and recorded, and decoding stops.
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="write") as pool, \
                tqdm(total=len(jobs), unit="photo", disable=not progress, leave=False) as bar:
            in_flight = None
            for batch in batched(decoded, batch_size):
                probabilities, codes = predict_batch(session, batch)
                if in_flight:
                    bar.update(in_flight.result())
                in_flight = pool.submit(write_and_record, batch, probabilities, codes)
            if in_flight:
                bar.update(in_flight.result())
    finally:
        decoded.close()


def _plan(photos, input_dir: Path, output_dir: Path, seen: dict[str, Seen], run_key: str, code_key: str | None, *,
          force: bool, retry_failed: bool, add_codes: bool, follow_symlinks: bool, narrow: bool) -> Plan:
    """Which photos to tag: new ones, changed ones (size or mtime), and those tagged by another model.

    A photo tagged by this model whose similarity code is missing or from another code map is left as
    it is and counted, or, with ``add_codes``, planned for its code alone.

    With ``narrow``, a kept copy that grants more than its original is narrowed on the way (a dry run
    changes nothing).
    """
    plan = Plan(predictions_missing=any(s.status == "tagged" for s in seen.values())
                and not (output_dir / PREDICTIONS_CSV).is_file())
    for rel in photos:
        try:
            st = stat_inside(input_dir, rel, follow_symlinks)
        except OSError as exc:
            plan.unreadable.append((str(rel), f"cannot read: {exc.strerror}"))
            continue
        before = seen.get(str(rel))
        same_file = before is not None and (before.size, before.mtime_ns) == (st.st_size, st.st_mtime_ns)
        if same_file and not force:
            if before.status == "tagged" and before.run_key == run_key and _copy_kept(output_dir, rel, st, narrow):
                if code_key and before.code_key != code_key:
                    if add_codes:
                        plan.jobs.append(Job(rel, st, codes_only=True))
                        continue
                    plan.codes_missing += 1
                plan.unchanged += 1
                continue
            if before.status == "failed" and before.first_failed and not retry_failed:
                _copy_kept(output_dir, rel, st, narrow)
                plan.known_failures.append((str(rel), before.error or "", before.first_failed))
                continue
        failed_before = same_file and before.status == "failed"
        plan.jobs.append(Job(rel, st, before.first_failed if failed_before else None))
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


def predict_batch(session, batch) -> tuple[list, list]:
    """Stage 3: probabilities and code for each decoded photo of ``batch``; None where it could not be decoded."""
    good = [i for i, item in enumerate(batch) if item.pixels is not None]
    probabilities, codes = [None] * len(batch), [None] * len(batch)
    if good:
        p, words = session.predict_with_codes(np.stack([batch[i].pixels for i in good]),
                                              np.stack([batch[i].camera for i in good]))
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


def write_batch(context: WriteContext, jobs: list[Job], batch, probabilities, codes) -> list[Outcome]:
    """Stage 4 for one batch: merge tags into each photo's bytes and write the copies.

    Under the :class:`EditLock`, and with the state read then: a photo a
    person reviewed (even during this run) keeps the tags they gave it.
    """
    with EditLock(context.output_dir):
        state = State.reader(context.output_dir)
        try:
            return [write_photo(context, job, item, p, code, _reviewed(state, item.path))
                    for job, item, p, code in zip(jobs, batch, probabilities, codes)]
        finally:
            if state:
                state.close()


def _reviewed(state: State | None, rel: Path) -> Record | None:
    record = state.get(str(rel)) if state else None
    return record if record is not None and record.reviewed and record.status == "tagged" else None


def write_photo(context: WriteContext, job: Job, item, p, code, reviewed: Record | None) -> Outcome:
    """One photo of stage 4: its copy in OUTPUT (tagged, or byte for byte where it failed) and its record."""
    rel = str(item.path)
    if job.codes_only:
        if code is None:
            return Outcome(rel, None, f"no similarity code: {item.error}")
        return Outcome(rel, CodeUpdate(rel, code, context.code_key))
    st = item.stat or job.stat  # the version actually read, where it was read
    probabilities = dict(zip(context.vocabulary, map(float, p))) if p is not None else None
    code_key = context.code_key if code else None
    if p is not None and reviewed is not None and (reviewed.size, reviewed.mtime_ns) == (st.st_size, st.st_mtime_ns) \
            and (context.output_dir / rel).is_file():  # the same photo: new probabilities; its tags and copy stay
        return Outcome(rel, replace(reviewed, run_key=context.run_key, probabilities=probabilities, code=code,
                                    code_key=code_key), reviewed_kept=True)
    tags, written, error, output, notes = [], [], item.error, item.data, []
    if p is not None:
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
            atomic_write(context.output_dir / rel, output, item.stat.st_mode & 0o777, temp_folder(context.output_dir))
        except OSError as exc:
            return Outcome(rel, None, f"cannot write to OUTPUT: {_error_text(exc)}",
                           no_space=exc.errno if no_space(exc) else 0)
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
    taken.  Raises :class:`NoSpace` once the batch is recorded if a copy,
    or the state itself, found no space.
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
                raise NoSpace(_state_path(state.output), outcomes) from None
            raise NoSpace(state.output / full.rel, outcomes, full.no_space) from None
    for outcome in counted:
        summary.add(outcome)
    if full is not None:
        raise NoSpace(state.output / full.rel, code=full.no_space)
