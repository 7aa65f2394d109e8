"""The Ray engine: the stages of ``tag`` run as a Ray Data job across a cluster.

The driver (``tagger.tagging.pipeline.tag_folder``) discovers, plans and holds the
run's lock as it does for the local engine; only the jobs run elsewhere.
They become a Ray Dataset, and each stage is the local engine's function:

* **decode**: :func:`tagger.decode.read_and_decode`, as tasks on the cluster's CPUs;
* **predict**: :func:`tagger.tagging.stages.predict_batch`, in a pool of actors,
  each holding one model session (one actor per GPU where the cluster has
  GPUs, else up to one per node);
* **write**: :func:`tagger.tagging.stages.write_batch`, as tasks on the workers,
  into OUTPUT on a filesystem every node mounts, under the same edit lock;
* **record**: :func:`tagger.tagging.stages.commit`, on the driver, batch by batch
  as the outcomes stream back, so a killed driver loses nothing recorded
  and a rerun goes on from there.  Ray retries a task whose worker died (3
  times, Ray's default) and restarts a predicting actor (Ray Data's default).

Rows carry a stage's Python objects (the planned job, the decoded photo's
pixels, the prediction, the outcome) pickled, between processes of one
cluster.  The photo's bytes stay out of them: the write stage reads the
file again and writes it only if it is still the version that was decoded
(same inode, size, modification and change times), else the photo is left
for the next run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pickle
import re
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
from tqdm import tqdm

from tagger.bundle import Bundle
from tagger.decode import Decoded, read_and_decode
from tagger.discover import STATE_DIR_NAME, read_inside
from tagger.errors import TercTagError
from tagger.sessions import load_session
from tagger.state import State
from tagger.tagging.stages import Job, Outcome, Summary, WriteContext, commit, predict_batch, write_batch

if TYPE_CHECKING:
    from tagger.tagging.pipeline import TagOptions

#: CPUs that Ray reserves per predicting actor and per decode or write task.  The model's own thread
#: pool uses every core it finds, as in the local engine, so the actor reserves none of the CPUs the
#: tasks are scheduled on, and two tasks share a CPU, so that one waiting on the disk leaves it to the
#: other.  On 2 CPUs (benchmarks/ray_engine.py) the engine's steady state went from 0.65x the local
#: engine's with Ray's defaults (1 and 1) to 0.9x with (0, 1) and about 1x with (0, 0.5).
PREDICT_CPUS, DECODE_CPUS = 0, 0.5
#: Photos per decode task.  Smaller than a batch, so that the first batch is ready sooner (several tasks
#: decode it at once) and the actor gets whole batches of ``batch_size`` all the same.
DECODE_ROWS = 8

#: A batch as the stages exchange it (``batch_format="numpy"``): a column of pickled objects per name.
Batch = dict[str, np.ndarray]


class EngineError(TercTagError):
    """Ray is missing, its cluster cannot be reached, or the model cannot start on it: one line says which."""


def require() -> None:
    """Check that Ray is installed, before a run spends anything."""
    from importlib.util import find_spec

    if find_spec("ray") is None or find_spec("ray.data") is None:
        raise EngineError('the Ray engine needs Ray: pip install -e ".[ray]" (or pip install "ray[data]")')


@contextlib.contextmanager
def ray_messages_to(log: Path) -> Iterator[TextIO]:
    """Send this process's standard output and error to ``log`` meanwhile; yield a stream to the real error.

    Ray's core writes notices straight to file descriptor 2, past any Python
    logging setting, and its raylet's notices about a failing worker reach
    the driver's standard output; a cron job must stay quiet, and the notices
    stay readable in the log.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(log, "ab") as target:
            for fd in saved:
                os.dup2(target.fileno(), fd)
        with os.fdopen(os.dup(saved[2]), "w", buffering=1) as terminal:
            yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def connect(address: str | None = None) -> None:
    """Join the cluster at ``address``, or start a local Ray on this machine."""
    require()
    import ray
    if ray.is_initialized():
        return
    if address and ":" in address:  # ray.init keeps retrying an address nothing listens on, for minutes
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot reach the Ray cluster at {address}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # the C++ core's notices, on stderr
    logging.getLogger("ray").setLevel(logging.ERROR)
    term = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise EngineError(f"cannot start or reach {where}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    if callable(term):  # a local Ray takes SIGTERM to exit(1) at once; the caller's handler (the command
        signal.signal(signal.SIGTERM, term)  # line's: stop after the batch, record it) stays, Ray's atexit cleans up
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # Load the model before decoding starts: on a small node the decode tasks would otherwise starve the
    # actor's start (17 s instead of 7 here), and a bundle that differs on a node fails the run at once.
    context.wait_for_min_actors_s = 600


def _pickled(objects: Sequence[object]) -> np.ndarray:
    column = np.empty(len(objects), dtype=object)
    column[:] = [pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL) for o in objects]
    return column


def _unpickled(column: np.ndarray) -> list[Any]:
    return [pickle.loads(value) for value in column]


def _decode(batch: Batch, input_dir: str, size: tuple[int, int], follow_symlinks: bool) -> Batch:
    jobs: list[Job] = _unpickled(batch["job"])
    decoded = [read_and_decode(Path(input_dir), job.rel, size, follow_symlinks) for job in jobs]
    return {"job": batch["job"], "decoded": _pickled([replace(item, data=None) for item in decoded])}


class _Predictor:
    """An actor holding one model session for its lifetime (the model loads once, not once per batch)."""

    def __init__(self, bundle: str, backend: str, model_id: str) -> None:
        self.session = load_session(Bundle(bundle, backend))
        if self.session.model_id != model_id:  # every node must see the driver's bundle
            raise EngineError(f"the model bundle {bundle} on this node differs from the driver's")

    def __call__(self, batch: Batch) -> Batch:
        probabilities, codes = predict_batch(self.session, _unpickled(batch["decoded"]))
        return {**batch, "predicted": _pickled(list(zip(probabilities, codes, strict=True)))}


def _write(batch: Batch, context: WriteContext, follow_symlinks: bool) -> Batch:
    jobs: list[Job] = _unpickled(batch["job"])
    predicted: list[tuple[np.ndarray | None, bytes | None]] = _unpickled(batch["predicted"])
    decoded = [_read_again(context.input_dir, job, item, follow_symlinks)
               for job, item in zip(jobs, _unpickled(batch["decoded"]), strict=True)]
    same = [i for i, item in enumerate(decoded) if item is not None]
    outcomes = write_batch(context, [jobs[i] for i in same], [item for item in decoded if item is not None],
                           [predicted[i][0] for i in same], [predicted[i][1] for i in same])
    return {"outcome": _pickled(outcomes + [Outcome(str(job.rel), None, CHANGED, retry=True)
                                            for job, item in zip(jobs, decoded, strict=True) if item is None])}


CHANGED = "changed while it was being tagged; tagged on the next run"


def _read_again(input_dir: Path, job: Job, item: Decoded, follow_symlinks: bool) -> Decoded | None:
    """``item`` with its bytes, read again here; None if the file is no longer the version decoded.

    The bytes do not travel with the row: through the predicting actor they
    cost two copies into Ray's object store per photo (2.3 MB for a full-size
    ISS photo), and the wall time 1.37x the local engine's against 1.24x
    (``benchmarks/ray_engine.py``).  Where the write runs on the node that
    decoded, the page cache serves the second read.
    """
    if item.stat is None or job.codes_only:  # nothing was read, or the copy stays as it is
        return item
    try:
        data, st = read_inside(input_dir, item.path, follow_symlinks)
    except OSError:
        return None
    def version(st: os.stat_result) -> tuple[int, int, int, int]:
        return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns

    return replace(item, data=data) if version(st) == version(item.stat) else None


@dataclass(frozen=True)
class RayEngine:
    """The stages as a Ray Data job on the cluster at ``address`` (None: a local Ray, or ``RAY_ADDRESS``).

    Passed to :func:`tagger.tagging.pipeline.tag_folder`, which plans and records;
    Ray's own messages go to ``OUTPUT/.terc-tag/ray.log``.
    """

    address: str | None = None

    def run(self, jobs: list[Job], model: Bundle, context: WriteContext, state: State, summary: Summary,
            options: TagOptions) -> None:
        with ray_messages_to(state.output / STATE_DIR_NAME / "ray.log") as terminal:
            self._run(jobs, model, context, state, summary, options, terminal)

    def _run(self, jobs: list[Job], model: Bundle, context: WriteContext, state: State, summary: Summary,
             options: TagOptions, terminal: TextIO) -> None:
        import ray

        connect(self.address)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        nodes = max(1, len([n for n in ray.nodes() if n.get("Alive")]))
        # Small blocks stream through the stages on their own, so recording starts early.
        dataset: ray.data.Dataset = ray.data.from_items([{"job": pickle.dumps(job)} for job in jobs],
                                      override_num_blocks=-(-len(jobs) // DECODE_ROWS))
        # A stage's own arguments are bound with functools.partial rather than fn_kwargs: Ray Data's types take a
        # batch function of the batch alone, and mypy checks the partial's arguments against the function.
        dataset = dataset.map_batches(
            functools.partial(_decode, input_dir=str(context.input_dir), size=model.size,
                              follow_symlinks=options.follow_symlinks),
            batch_size=DECODE_ROWS, batch_format="numpy", num_cpus=DECODE_CPUS)
        dataset = dataset.map_batches(
            _Predictor, batch_size=options.batch_size, batch_format="numpy", num_gpus=1 if gpus else 0,
            num_cpus=PREDICT_CPUS,
            compute=ray.data.ActorPoolStrategy(min_size=gpus or 1, max_size=gpus or nodes),
            fn_constructor_kwargs={"bundle": str(Path(model.path).resolve()), "backend": model.backend,
                                   "model_id": model.model_id})
        dataset = dataset.map_batches(
            functools.partial(_write, context=context, follow_symlinks=options.follow_symlinks),
            batch_size=options.batch_size, batch_format="numpy", num_cpus=DECODE_CPUS)
        with tqdm(total=len(jobs), unit="photo", disable=not options.progress, leave=False, file=terminal) as bar:
            try:
                for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    outcomes: list[Outcome] = _unpickled(batch["outcome"])
                    commit(state, outcomes, summary)
                    bar.update(len(outcomes))
            except ray.exceptions.RayActorError as exc:  # the model could not load on a node: Ray's last line says why
                cause = [line for line in str(exc).splitlines() if line.strip()][-1]
                cause = re.sub(r"^tagger\.[\w.]+: ", "", cause)  # our own errors' messages stand alone
                raise EngineError(f"the model could not start on a Ray worker: {cause}") from None
