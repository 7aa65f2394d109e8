"""``terc-tag explain PHOTO... --out DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tagger.cli.common import backend_option, fail, model_option, open_bundle, show_progress
from tagger.errors import EXIT_OK, EXIT_SOME_FAILED


@click.command("explain")
@click.argument("photos", metavar="PHOTO...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the heat maps: OUT/<photo name>/<tag>.png and OUT/<photo name>/sheet.png.")
@click.option("--tags", help="Comma-separated tags to explain (default: the tags each photo gets, or its most "
                             "probable tag).")
@model_option
@backend_option
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Which tags a photo gets, when --tags is not given (default: the model's own, as for tag).")
def command(photos, out_dir, tags, model_dir, backend, threshold):
    """Show where in each PHOTO the evidence for its tags lies, as heat maps.

    Grad-CAM on the backbone layer the model reads, from the feature map
    that --backend computes: for each photo and tag, a PNG of the photo
    with the heat map over it (bright where the evidence is), and one sheet
    per photo with all its tags side by side, each with its probability.
    Works for every model bundle.

    \b
    Examples:
      terc-tag explain tagged/iss071e123456.jpg --out explained
      terc-tag explain photos/*.jpg --out explained --tags Aurora,Night

    Exit codes: 0 all explained, 1 some photo could not be read (the others are
    explained), 2 usage error (an unknown tag, say).
    """
    from tqdm import tqdm

    bundle = open_bundle(model_dir, backend)
    wanted = [t.strip() for t in tags.split(",") if t.strip()] if tags else None
    unknown = [t for t in wanted or [] if t not in bundle.vocabulary]
    if unknown:
        fail(f"--tags {', '.join(unknown)}: not in the model's vocabulary ({', '.join(bundle.vocabulary)})")
    from tagger.cli.common import open_session
    from tagger.decode import DecodeError, decode
    from tagger.explain import Explainer, write_explanation
    from tagger.names import shown
    from tagger.thumbnails import display_image

    explain = Explainer(open_session(model_dir, backend))
    failed = 0
    for photo in tqdm(photos, unit="photo", disable=not show_progress(), leave=False):
        try:
            data = photo.read_bytes()
            pixels, camera = decode(data, explain.session.size)
        except OSError as exc:
            click.echo(f"terc-tag: {shown(photo)}: cannot read: {exc.strerror or exc}", err=True)
            failed += 1
            continue
        except DecodeError as exc:
            click.echo(f"terc-tag: {shown(photo)}: {exc}", err=True)
            failed += 1
            continue
        explanation = explain(pixels, camera, wanted, threshold)
        try:
            write_explanation(out_dir, photo.stem, display_image(data), explanation)
        except OSError as exc:
            fail(f"cannot write to {out_dir}: {exc.strerror or exc}")
        click.echo(f"{shown(photo)}: " + ", ".join(f"{t} {explanation.probabilities[t]:.2f}" for t in explanation.maps)
                   + f" -> {shown(out_dir / photo.stem)}")
    sys.exit(EXIT_SOME_FAILED if failed else EXIT_OK)
