"""What a person is told when terc-tag cannot go on: one line and an exit code.

:class:`TercTagError` is the base of every fault of the input or of the
machine that terc-tag recognises: a bundle that is not one, a folder that
cannot be tagged, a lock held by another run, a disk too full.  Each module
raises its own subclass (``BundleError`` in :mod:`tagger.bundle`,
``LockHeld`` in :mod:`tagger.state`...), and the command line prints its
message as one line and exits with its ``exit_code``.  An ``OSError`` that
reaches the command line is the machine's fault too, said in one line.
Anything else is a bug in terc-tag: the command line shows its traceback and
exits with :data:`EXIT_INTERNAL`.

The exit codes live here, beside the errors that carry them, so the library
and the command line agree on them.
"""

from __future__ import annotations

import errno
import sqlite3

EXIT_OK = 0
#: The run went on, but some files failed (each said in one line and the log).
EXIT_SOME_FAILED = 1
#: A usage error or bad input: nothing was done.
EXIT_USAGE = 2
#: Another run holds OUTPUT's lock.
EXIT_LOCKED = 3
#: No space left on the device (what was finished is kept).
EXIT_NO_SPACE = 4
#: A bug in terc-tag (sysexits' EX_SOFTWARE): its traceback is shown, please report it.
EXIT_INTERNAL = 70
#: Ctrl-C, in every command (the shell's 128 + SIGINT).
EXIT_INTERRUPTED = 130


class TercTagError(Exception):
    """A fault of the input or the environment, said in one line; ``exit_code`` is what the command exits with."""

    exit_code = EXIT_USAGE


class MissingPackage(TercTagError, ImportError):
    """An optional part asked for on an install without it: the message says what to install."""


class TensorFlowMissing(MissingPackage):
    """Training, fit-codes or the ``tf`` backend asked for on an install without TensorFlow."""


#: Errors of a disk, or a user's quota, with no room left: the run stops, since every next write would fail too.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or quota) is full: an OSError, or SQLite's 'database or disk is full'."""
    if isinstance(exc, OSError):
        return exc.errno in NO_SPACE_ERRNOS
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)
