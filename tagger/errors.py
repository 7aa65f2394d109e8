"""What a person is told when terc-tag cannot go on: one line and an exit code, never a traceback.

:class:`TercTagError` is the base of the faults of the input or of the
machine (not of terc-tag itself): the command line prints its message as
one line and exits with its ``exit_code``.  A real bug is anything else, and
shows its traceback.
"""

from __future__ import annotations


class TercTagError(Exception):
    """A fault of the input or the environment, said in one line; ``exit_code`` is what the command exits with."""

    exit_code = 2


class TensorFlowMissing(TercTagError, ImportError):
    """Training, fit-codes or the ``tf`` backend asked for on an install without TensorFlow."""
