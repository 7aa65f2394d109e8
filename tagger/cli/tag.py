"""``terc-tag tag INPUT OUTPUT``: a run under cron, which leaves its record however it ends."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from tagger.cli.common import (
    backend_option,
    batch_option,
    default_model,
    fail,
    follow_symlinks_option,
    model_option,
    quiet_option,
    show_progress,
    threshold_option,
    workers_option,
)
from tagger.errors import EXIT_INTERNAL, EXIT_NO_SPACE, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from tagger.names import shown

if TYPE_CHECKING:
    from tagger.tagging.pipeline import Engine
    from tagger.tagging.stages import Summary

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class TagCommand(click.Command):
    """``tag``, whose usage errors are logged too: under cron the log is often the only record read."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        given = list(args)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            RunRecord(None, None, _option(given, "--log-file"), _option(given, "--json-summary")).refused(
                f"{exc.format_message()} (terc-tag tag --help says more)", EXIT_USAGE)


def _option(args: list[str], name: str) -> Path | None:
    """The value of option ``name`` in raw ``args``, if it is there."""
    for at, arg in enumerate(args):
        if arg == name and at + 1 < len(args):
            return Path(args[at + 1])
        if arg.startswith(name + "="):
            return Path(arg[len(name) + 1:])
    return None


class RunRecord:
    """Where a run leaves its record: one line on stderr, a line in --log-file, the --json-summary."""

    def __init__(self, input_dir: Path | None, output_dir: Path | None, log_file: Path | None,
                 json_summary: Path | None) -> None:
        self.input, self.output, self.log_file, self.json_summary = input_dir, output_dir, log_file, json_summary

    def where(self) -> str:
        return f"{shown(self.input)} -> {shown(str(self.output))}" if self.input is not None else "terc-tag tag"

    def refused(self, message: str, code: int) -> NoReturn:
        """A run that never started: record it, say why, exit ``code``."""
        self.record_refusal(message, code)
        fail(message, code)

    def record_refusal(self, message: str, code: int, ended: str = "refused") -> None:
        self.append_log([f"{self.where()}: {ended} (exit {code}): {shown(message)}"])
        self.write_json({"ended": ended, "exit_code": code, "error": shown(message),
                         "input": shown(self.input) if self.input else None,
                         "output": shown(self.output) if self.output else None})

    def append_log(self, lines: list[str]) -> OSError | None:
        log_file = self.log_file
        if log_file is None:
            return None
        stamp = datetime.now().isoformat(timespec="seconds")
        return _attempt(log_file, lambda: _append(log_file, [f"{stamp} {line}" for line in lines]))

    def write_json(self, report: dict[str, Any]) -> OSError | None:
        path = self.json_summary
        if path is None:
            return None
        return _attempt(path, lambda: path.write_text(json.dumps(report, indent=1)))


def _append(path: Path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _attempt(path: Path, write: Callable[[], object]) -> OSError | None:
    """Run ``write``; if it fails, say so on stderr (the run's own line is printed anyway) and return why."""
    try:
        write()
        return None
    except OSError as exc:
        click.echo(f"terc-tag: error: cannot write {shown(path)}: {exc.strerror or exc}", err=True)
        return exc


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise :class:`tagger.tagging.pipeline.Stopped` meanwhile: the run ends as it would
    on any stop, its record written."""
    from tagger.tagging.pipeline import Stopped

    def stop(signum: int, frame: FrameType | None) -> NoReturn:
        raise Stopped(signum)

    before = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def exit_code(summary: Summary) -> int:
    if summary.ended == "no space":
        return EXIT_NO_SPACE
    if summary.ended.startswith("SIG"):
        return 128 + signal.Signals[summary.ended].value
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


@click.command("tag", cls=TagCommand)
@click.argument("input_dir", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_dir", metavar="OUTPUT", type=click.Path(path_type=Path))
@model_option
@backend_option
@threshold_option
@click.option("--force", is_flag=True, help="Re-tag every photo, even those an earlier run finished.")
@click.option("--retry-failed", is_flag=True,
              help="Retry known failures too: files that failed before and have not changed since.")
@click.option("--add-codes", is_flag=True,
              help="Also compute the similarity code of photos tagged before the model had a code map "
                   "(a decode and forward pass each; no photo is rewritten).")
@follow_symlinks_option
@click.option("--dry-run", is_flag=True, help="Say what would be tagged; write nothing.")
@click.option("--review", "review_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write photos with a probability near a threshold to this CSV, most uncertain first.")
@click.option("--review-margin", type=click.FloatRange(0, 0.5), default=0.1, show_default=True,
              help="How near a threshold counts as uncertain.")
@batch_option
@workers_option
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: threads in this process; ray: the same stages as a Ray Data job on a cluster "
                   '(pip install -e ".[ray]"), with OUTPUT on a filesystem every node mounts.')
@click.option("--ray-address", metavar="ADDR",
              help="With --engine ray, join the cluster at ADDR (e.g. 10.0.0.5:6379, or 'auto' on a cluster "
                   "node); without it, start a local Ray on this machine.")
@quiet_option
@click.option("--log-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Append a line per run, and one per failed file, to this log.")
@click.option("--json-summary", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the run's summary (every failed and skipped file) as JSON.")
def command(input_dir, output_dir, model_dir, backend, threshold, force, retry_failed, add_codes, follow_symlinks,
            dry_run, review_file, review_margin, batch_size, workers, engine, ray_address, quiet, log_file,
            json_summary):
    """Tag the photos of INPUT into a copy of it at OUTPUT.

    Walks INPUT for JPEG, TIFF and PNG photos, predicts tags, and writes each
    photo to the same place under OUTPUT with the tags merged into XMP
    dc:subject, IPTC Keywords and EXIF XPKeywords. Originals are never
    changed; pixels are never re-encoded. OUTPUT/predictions.csv lists every
    photo's probabilities. A rerun tags only new or changed photos; a run
    with nothing new loads no model and writes nothing. A file that failed
    is a known failure until it changes: listed, but not retried or reported
    again. Symbolic links are skipped unless --follow-symlinks. Each photo
    tagged also gets a similarity code for `terc-tag similar`, from the same
    forward pass.

    \b
    Examples:
      terc-tag ./incoming ./tagged
      terc-tag tag ./incoming ./tagged --threshold calibrated --review review.csv
      terc-tag ./incoming ./tagged --quiet --log-file tagging.log   # from cron
      terc-tag ./incoming ./tagged --retry-failed                   # retry known failures
      terc-tag ./incoming ./tagged --add-codes      # index photos tagged before 0.3 for `similar`
      terc-tag /nfs/archive /nfs/tagged --engine ray --ray-address 10.0.0.5:6379   # on a Ray cluster

    However it ends, a run prints one line saying how, appends it to
    --log-file and writes --json-summary ("ended"); SIGINT, SIGTERM and SIGHUP
    stop it after the batch being written, and predictions.csv lists every
    photo finished.

    Exit codes: 0 all good, 1 some files failed, 2 usage error or refused
    start, 3 another run holds the lock, 4 no space left in OUTPUT (or for the
    log), 129 SIGHUP, 130 SIGINT, 143 SIGTERM.
    """
    from tagger.errors import TercTagError
    from tagger.tagging.pipeline import Stopped

    record = RunRecord(input_dir, output_dir, log_file, json_summary)
    with stop_on_signals():
        try:
            summary = _run(record, input_dir, output_dir, model_dir, backend, (engine, workers, ray_address),
                           dict(threshold=threshold, force=force, retry_failed=retry_failed, add_codes=add_codes,
                                dry_run=dry_run, follow_symlinks=follow_symlinks, batch_size=batch_size,
                                review_margin=review_margin, progress=show_progress(quiet)))
        except (Stopped, KeyboardInterrupt) as exc:  # before any photo was tagged, or stopped twice
            name = exc.args[0] if isinstance(exc, Stopped) else "SIGINT"
            _stopped_before(record, name, 128 + signal.Signals[name].value)
        except (TercTagError, OSError, sqlite3.Error) as exc:
            _refuse(record, exc, output_dir)
        except Exception as exc:  # a bug: recorded as every ending is, then shown with its traceback
            record.record_refusal(f"{type(exc).__name__}: {exc}", EXIT_INTERNAL, ended="internal error")
            raise
        # Done: a signal now would only cut the record short.
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)
        code = _record_ending(record, summary, review_file if not dry_run else None, review_margin, quiet)
    _say_ending(summary, quiet)
    sys.exit(code)


def _refuse(record: RunRecord, exc: Exception, output_dir: Path) -> NoReturn:
    """A run that could not go on before any photo was tagged: one line, the log, the JSON summary, its exit code.

    Each :class:`~tagger.errors.TercTagError` carries its line and code (a
    held lock 3, no space 4, a bad bundle, folder, state or Ray cluster 2);
    an ``OSError`` names its file; SQLite's own errors are OUTPUT's state.
    """
    from tagger.errors import TercTagError, no_space
    from tagger.state import state_file
    from tagger.tagging.stages import NoSpace

    if no_space(exc):
        record.refused(str(exc if isinstance(exc, NoSpace) else NoSpace(getattr(exc, "filename", None) or output_dir)),
                       EXIT_NO_SPACE)
    if isinstance(exc, TercTagError):
        record.refused(str(exc), exc.exit_code)
    if isinstance(exc, sqlite3.Error):  # a state file SQLite cannot use, found after it was opened
        record.refused(f"OUTPUT's state {shown(str(state_file(output_dir)))} cannot be used: {exc}", EXIT_USAGE)
    assert isinstance(exc, OSError)
    where = exc.filename if exc.filename is not None else output_dir
    record.refused(f"{shown(os.fsdecode(where))}: {exc.strerror or exc}", EXIT_USAGE)


def _record_ending(record: RunRecord, summary: Summary, review_file: Path | None, review_margin: float,
                   quiet: bool) -> int:
    """The review file, the log's lines and the JSON summary of a run that ran; its exit code."""
    from tagger.errors import no_space
    from tagger.tagging.predictions import write_review

    if review_file and record.output is not None:
        output = record.output
        count = _report(summary, review_file,
                        lambda: write_review(review_file, output, summary.thresholds, review_margin))
        if count is not None and not quiet:
            click.echo(f"{count} photos to review in {shown(review_file)}")
    code = exit_code(summary)
    lines = [_log_line(summary, code)]
    lines += [f"failed {shown(name)}: {shown(reason)}" for name, reason in summary.failed]
    for error in (record.append_log(lines), record.write_json({**summary.as_dict(), "exit_code": code})):
        if error is not None and code in (EXIT_OK, EXIT_SOME_FAILED):
            code = EXIT_NO_SPACE if no_space(error) else EXIT_SOME_FAILED
    return code


def _say_ending(summary: Summary, quiet: bool) -> None:
    from tagger.tagging.report import console, print_summary

    if not quiet:
        print_summary(summary, console())
    elif summary.failed:
        for name, reason in summary.failed:
            click.echo(f"terc-tag: failed: {shown(name)}: {shown(reason)}", err=True)
    if summary.stop_reason:
        click.echo(f"terc-tag: stopped: {shown(summary.stop_reason)}; the {len(summary.tagged)} photos tagged are "
                   "kept (predictions.csv lists every photo finished), and the next run goes on from there", err=True)


def _run(record: RunRecord, input_dir: Path, output_dir: Path, model_dir: Path | None, backend: str,
         engine_choice: tuple[str, int | None, str | None], options: dict[str, Any]) -> Summary:
    """The run itself; a start it refuses is recorded and exits."""
    from tagger.bundle import Bundle
    from tagger.state import RunLock
    from tagger.tagging.pipeline import tag_folder

    RunLock(output_dir).check()  # before spending seconds on loading the model
    engine = _engine(record, *engine_choice)
    model = Bundle(model_dir or default_model(), backend)  # the network itself is loaded only if a photo needs it
    return tag_folder(input_dir, output_dir, model, engine, **options)


def _engine(record: RunRecord, name: str, workers: int | None, ray_address: str | None) -> Engine:
    """The engine ``--engine`` names: the local one, or a Ray Data job (Ray checked before the model loads)."""
    if ray_address and name != "ray":
        record.refused("--ray-address needs --engine ray", EXIT_USAGE)
    if name != "ray":
        from tagger.tagging.pipeline import LocalEngine

        return LocalEngine(workers)
    from tagger.tagging.ray_engine import RayEngine, require

    require()  # Ray is there, before the model loads
    return RayEngine(ray_address)


def _stopped_before(record: RunRecord, name: str, code: int) -> NoReturn:
    """A signal before the photos' work began (or a second one while predictions.csv was written)."""
    message = f"{name} received"
    record.append_log([f"{record.where()}: stopped: {message} (exit {code})"])
    record.write_json({"ended": name, "exit_code": code, "stop_reason": message,
                       "input": shown(str(record.input)), "output": shown(str(record.output))})
    click.echo(f"terc-tag: stopped: {message}; every photo recorded is kept, and the next run goes on from there",
               err=True)
    sys.exit(code)


def _report(summary: Summary, path: Path, write: Callable[[], int]) -> int | None:
    """Run ``write``; the photos are done, so a report that cannot be written is one failed file more."""
    try:
        return write()
    except OSError as exc:
        summary.failed.append((str(path), f"cannot write: {exc.strerror or exc}"))
        return None


def _log_line(summary: Summary, code: int) -> str:
    ended = "" if summary.ended == "finished" else f"; stopped: {shown(summary.stop_reason or summary.ended)}"
    return (f"{shown(summary.input)} -> {shown(summary.output)}: {len(summary.tagged)} tagged, {summary.unchanged} "
            f"already done, {len(summary.failed)} failed, {len(summary.known_failures)} known failures, "
            f"{len(summary.skipped)} skipped, {summary.photos_per_second:.1f} photos/s{ended} (exit {code})")
