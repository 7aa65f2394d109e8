"""The ``terc-tag`` command line: a thin click layer over the library.

Each command lives in its own module and imports the heavy machinery
(TensorFlow) only when it runs, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import os
import traceback
from typing import NoReturn

import click

from tagger import __version__
from tagger.cli import correct, evaluate, explain, fit_codes, labels, review, similar, tag, train
from tagger.cli.common import fail
from tagger.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_NO_SPACE, EXIT_USAGE, TercTagError, no_space


class DefaultToTag(click.Group):
    """``terc-tag INPUT OUTPUT`` is short for ``terc-tag tag INPUT OUTPUT``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["tag", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> None:
        """Every command's endings in one place: see :func:`report_ending`."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if isinstance(exc, click.ClickException | click.exceptions.Exit | click.exceptions.Abort):
                raise  # click's own: a usage error, or --help and --version done
            report_ending(exc)
        except KeyboardInterrupt:
            fail("interrupted (Ctrl-C); nothing half-written is kept", EXIT_INTERRUPTED)


def report_ending(exc: Exception) -> NoReturn:
    """A command that could not go on: one line and its exit code, or, for a bug, its traceback.

    A :class:`~tagger.errors.TercTagError` says its own line and exit code.
    An ``OSError`` is the machine's (a permission, a missing file, a full
    disk): one line naming the file, exit 4 for no space left, else 2.
    Anything else is a bug in terc-tag: its traceback, then one line asking
    for a report, exit 70.
    """
    if isinstance(exc, TercTagError):
        fail(str(exc), exc.exit_code)
    if isinstance(exc, OSError):
        where = f"{os.fsdecode(exc.filename)}: " if exc.filename is not None else ""
        fail(f"{where}{exc.strerror or exc}", EXIT_NO_SPACE if no_space(exc) else EXIT_USAGE)
    traceback.print_exception(exc)
    fail(f"internal error: {type(exc).__name__}: {exc}. This is a bug in terc-tag {__version__}; please report it "
         "with the traceback above", EXIT_INTERNAL)


@click.group(cls=DefaultToTag, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="terc-tag")
def main() -> None:
    """Tag photo archives with a trained classifier.

    \b
    Examples:
      terc-tag ./incoming ./tagged          tag new photos into a copy (same as `tag`)
      terc-tag labels ./tagged              show each photo's tags
      terc-tag evaluate                     the default model on its test split
      terc-tag train ./labelled --out models/mine
      terc-tag similar ./tagged ./tagged/a.jpg           photos like a.jpg
      terc-tag explain ./tagged/a.jpg --out explained    why a.jpg got its tags
      terc-tag correct ./tagged/a.jpg --add Aurora       fix a tag; no later run undoes it
      terc-tag review ./tagged                           check and correct tags in a web page

    Exit codes: 0 all good, 1 some files failed, 2 usage error or bad input, 3 another run holds the
    lock, 4 no space left, 70 a bug in terc-tag (its traceback shown; please report it),
    129/130/143 stopped by SIGHUP/SIGINT/SIGTERM.
    """
    # TensorFlow's C++ warnings would fill every cron mail; errors still show (see also tagger._tf).  Set here,
    # before any command imports TensorFlow, not on import: a library import changes no environment variable.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


for module in (tag, labels, evaluate, train, fit_codes, similar, explain, correct, review):
    main.add_command(module.command)
