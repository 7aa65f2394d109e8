"""``terc-tag tag INPUT OUTPUT``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from tagger.cli.common import (EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK, EXIT_SOME_FAILED, backend_option,
                               batch_option, fail, follow_symlinks_option, model_option, open_bundle, show_progress,
                               threshold_option, workers_option)


@click.command("tag")
@click.argument("input_dir", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_dir", metavar="OUTPUT", type=click.Path(path_type=Path))
@model_option
@backend_option("openvino-bf16")
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
@click.option("-q", "--quiet", is_flag=True, help="Print nothing unless something failed (for cron).")
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

    Exit codes: 0 all good, 1 some files failed, 2 usage error, 3 another run holds the lock,
    130 interrupted.
    """
    from tagger.pipeline import FolderError, tag_folder
    from tagger.predictions import write_review
    from tagger.ray_engine import EngineError
    from tagger.report import console, print_summary
    from tagger.state import LockHeld, RunLock

    try:
        RunLock(output_dir).check()  # before spending seconds on loading the model
    except LockHeld as exc:
        fail(str(exc), EXIT_LOCKED)
    if ray_address and engine != "ray":
        fail("--ray-address needs --engine ray")
    if engine == "ray":
        from tagger.ray_engine import require

        try:
            require()
        except EngineError as exc:
            fail(str(exc))
    model = open_bundle(model_dir, backend)  # the network itself is loaded only if a photo needs it
    try:
        summary = tag_folder(input_dir, output_dir, model, threshold=threshold, force=force,
                             retry_failed=retry_failed, add_codes=add_codes, dry_run=dry_run,
                             follow_symlinks=follow_symlinks, batch_size=batch_size, workers=workers,
                             review_margin=review_margin, progress=show_progress(quiet), engine=engine,
                             **({"address": ray_address} if engine == "ray" else {}))
    except FolderError as exc:
        fail(str(exc))
    except EngineError as exc:  # Ray missing, its cluster out of reach, or the model unable to start there
        fail(str(exc))
    except LockHeld as exc:
        fail(str(exc), EXIT_LOCKED)
    except ValueError as exc:  # 'calibrated' asked of a model without them; a bundle that cannot be built
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write to OUTPUT {output_dir}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        fail("interrupted; every photo finished so far is kept, and a rerun goes on from there", EXIT_INTERRUPTED)

    if review_file and not dry_run:
        count = _write_report(summary, review_file,
                              lambda: write_review(review_file, output_dir, summary.thresholds, review_margin))
        if count is not None and not quiet:
            click.echo(f"{count} photos to review in {review_file}")
    if json_summary:
        _write_report(summary, json_summary, lambda: json_summary.write_text(json.dumps(summary.as_dict(), indent=1)))
    if log_file:
        _write_report(summary, log_file, lambda: _append_log(log_file, summary))
    if not quiet:
        print_summary(summary, console())
    elif summary.failed:
        for name, reason in summary.failed:
            click.echo(f"terc-tag: failed: {name}: {reason}", err=True)
    sys.exit(EXIT_SOME_FAILED if summary.failed else EXIT_OK)


def _write_report(summary, path: Path, write):
    """Run ``write``; the photos are done, so a report that cannot be written is one failed file more."""
    try:
        return write()
    except OSError as exc:
        summary.failed.append((str(path), f"cannot write: {exc.strerror or exc}"))
        return None


def _append_log(path: Path, summary) -> None:
    stamp = datetime.now().isoformat(timespec="seconds")
    lines = [f"{stamp} {summary.input} -> {summary.output}: {len(summary.tagged)} tagged, {summary.unchanged} "
             f"already done, {len(summary.failed)} failed, {len(summary.known_failures)} known failures, "
             f"{len(summary.skipped)} skipped, "
             f"{summary.photos_per_second:.1f} photos/s"]
    lines += [f"{stamp} failed {name}: {reason}" for name, reason in summary.failed]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
