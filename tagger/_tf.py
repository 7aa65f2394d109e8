"""TensorFlow and Keras, imported once, without their C++ start-up chatter.

TensorFlow 2.21 writes absl log lines ("oneDNN custom operations are on...")
straight to file descriptor 2 while it loads, ignoring TF_CPP_MIN_LOG_LEVEL,
and every line of it would reach a cron mail.  File descriptor 2 points at
/dev/null for the import only; a failing import still raises, with a message
that says which extra brings TensorFlow.  Tagging never imports this module
(``tagger.inference``); training and the ``tf`` backend do.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from tagger.errors import TensorFlowMissing


@contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


try:
    with _stderr_to_devnull():
        import keras
        import tensorflow as tf
except ImportError as exc:
    raise TensorFlowMissing(f"TensorFlow is not installed ({exc}); train, fit-codes and --backend tf need it: "
                            'pip install "terc-tag[train]"') from None

__all__ = ["keras", "tf"]
