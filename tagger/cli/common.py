"""Options and helpers shared by the commands."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from tagger.backends import BACKENDS, DEFAULT  # names only: imports neither TensorFlow nor OpenVINO
from tagger.errors import EXIT_USAGE

if TYPE_CHECKING:
    from tagger.bundle import Bundle
    from tagger.inference import Session


def default_model() -> Path:
    """The default model: ``$TERC_TAG_MODEL``, else the bundled ``terc-iss``."""
    from tagger.bundle import bundled_models

    if os.environ.get("TERC_TAG_MODEL"):
        return Path(os.environ["TERC_TAG_MODEL"])
    return (bundled_models() or Path("models")) / "terc-iss"


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One clear line on stderr (names in it escaped, :func:`tagger.names.shown`), then exit."""
    from tagger.names import shown

    click.echo(f"terc-tag: error: {shown(message)}", err=True)
    sys.exit(code)


def echo_line(message: str) -> None:
    """A progress message that may hold photo names, as one line with each name's risky characters escaped."""
    from tagger.names import shown

    click.echo(shown(message))


def progress_log(quiet: bool) -> Callable[[str], None]:
    """The ``log`` of a long library call (``train``, ``fit-codes``): every line on stdout; under -q only the errors,
    the photos skipped because they cannot be read (``skipping NAME: why``), each as one line on stderr."""
    from tagger.names import shown

    def log(message: str) -> None:
        if not quiet:
            echo_line(message)
        elif message.startswith("skipping "):
            click.echo(f"terc-tag: {shown(message)}", err=True)

    return log


def show_progress(quiet: bool = False) -> bool:
    """Progress bars only for a person watching a terminal."""
    return not quiet and sys.stdout.isatty()


class ThresholdType(click.ParamType):
    """A probability in (0, 1), or ``calibrated`` for the model card's per-tag thresholds."""

    name = "THRESHOLD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) or value == "calibrated":
            return value
        try:
            number = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'calibrated'", param, ctx)
        if not 0.0 < number < 1.0:
            self.fail(f"{value} is not between 0 and 1", param, ctx)
        return number


class ModelType(click.ParamType):
    """A model bundle folder, or the name of a bundled model (``hirise``)."""

    name = "MODEL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from tagger.bundle import BundleError, find_bundle

        if isinstance(value, Path):
            return value
        try:
            return find_bundle(value)
        except BundleError as exc:
            self.fail(str(exc), param, ctx)


model_option = click.option(
    "--model", "model_dir", type=ModelType(), default=None,
    help="Model bundle: a folder (model.json + weights.npz) or a bundled model's name: terc-iss (the "
         "default), hirise, eurosat.")
threshold_option = click.option(
    "--threshold", "--thresholds", "threshold", type=ThresholdType(), default=None,
    help="Tag when probability >= this, or 'calibrated' for the per-tag thresholds in the model card. Default: "
         "the model's own, 0.5 (a single-label model such as hirise writes its top class; with a threshold, "
         "only where its probability reaches it).")
labels_option = click.option(
    "--labels", "labels_file", type=click.Path(path_type=Path, dir_okay=False),
    help="Read labels from this file instead of the photos' metadata "
         "(CSV 'file,tags', or a 'file class_id' list with classmap.csv beside it).")
folder_labels_option = click.option(
    "--folder-labels", is_flag=True,
    help="Take each photo's class from the name of its parent folder (the layout of EuroSAT and most image "
         "data sets), instead of its metadata.")


def one_label_source(labels_file: Path | None, folder_labels: bool) -> None:
    """Labels come from a file or from folder names, not both."""
    if labels_file and folder_labels:
        fail("--labels and --folder-labels both say where labels come from; give one")


class_map_option = click.option(
    "--class-map", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="class_id,name CSV for a 'file class_id' labels list (default: classmap.csv beside it).")
batch_option = click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True,
                            help="Photos per inference batch.")
follow_symlinks_option = click.option(
    "--follow-symlinks", is_flag=True,
    help="Follow symbolic links whose target lies inside the folder (links out of it are always refused). "
         "Default: links are skipped and listed.")
workers_option = click.option("--workers", type=click.IntRange(1, 64), default=None,
                              help="Decoding threads (default: min(4, CPU cores)).")


def _code_bits(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value % 64:
        raise click.BadParameter(f"{value} is not a multiple of 64")
    return value


code_bits_option = click.option(
    "--code-bits", type=click.IntRange(0, 1024), default=64, show_default=True, callback=_code_bits,
    help="Bits of the similarity code fit with the model (a multiple of 64; 0: no code map).")


def parse_vocabulary(value: str | None) -> list[str] | None:
    """``--vocabulary``: a comma-separated list, or a file with one tag per line."""
    if value is None:
        return None
    path = Path(value)
    words = path.read_text(encoding="utf-8").splitlines() if path.is_file() else value.split(",")
    words = [w.strip() for w in words if w.strip()]
    if not words:
        raise click.BadParameter("empty vocabulary", param_hint="--vocabulary")
    return words


BACKEND_CHOICES = tuple(BACKENDS)


#: ``--backend``, the same in every command that predicts: one default, :data:`tagger.backends.DEFAULT`.
backend_option = click.option(
    "--backend", type=click.Choice(BACKEND_CHOICES), default=DEFAULT, show_default=True,
    help="Inference backend: " + "; ".join(f"{b.name}: {b.help}" for b in BACKENDS.values()) + ".")


def open_bundle(model_dir: Path | None, backend: str = DEFAULT) -> Bundle:
    """Read a model bundle's card and identity (no TensorFlow); a :class:`~tagger.bundle.BundleError` says why not.

    The backend is the one :func:`tagger.sessions.load_session` will use: :data:`tagger.backends.DEFAULT` unless told.
    """
    from tagger.bundle import Bundle

    return Bundle(model_dir or default_model(), backend)


def open_session(model_dir: Path | None, backend: str = DEFAULT) -> Session:
    """Load a model bundle, ready to predict; a :class:`~tagger.bundle.BundleError` says why not."""
    from tagger.bundle import BundleError
    from tagger.sessions import load_session

    bundle = open_bundle(model_dir, backend)
    try:
        return load_session(bundle)
    except OSError as exc:
        raise BundleError(f"cannot load model bundle {bundle.path}: {exc.strerror or exc}") from exc


#: One meaning of -q in every command: nothing on stdout, errors still on stderr, files asked for still written.
quiet_option = click.option("-q", "--quiet", is_flag=True,
                            help="Print nothing but errors (for cron and scripts); files asked for are still written.")
