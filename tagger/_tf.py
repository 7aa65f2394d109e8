"""TensorFlow and Keras, imported once, without their C++ start-up chatter.

TensorFlow 2.21 writes absl log lines ("oneDNN custom operations are on...")
straight to file descriptor 2 while it loads, ignoring TF_CPP_MIN_LOG_LEVEL,
and every line of it would reach a cron mail.  File descriptor 2 points at
/dev/null for the import only; a failing import still raises as usual.
"""

import os
from contextlib import contextmanager


@contextmanager
def _stderr_to_devnull():
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _stderr_to_devnull():
    import tensorflow as tf  # noqa: E402
    import keras  # noqa: E402

__all__ = ["keras", "tf"]
