"""``terc-tag correct OUTPUT/PATH... --add TAG --remove TAG``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tagger.cli.common import fail, model_option, open_bundle, quiet_option
from tagger.errors import EXIT_OK, EXIT_SOME_FAILED


def _tag_list(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    return [word.strip() for value in values for word in value.split(",") if word.strip()]


@click.command("correct")
@click.argument("photos", metavar="OUTPUT/PATH...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--add", multiple=True, callback=_tag_list, metavar="TAG[,TAG...]", help="Tags to add (repeatable).")
@click.option("--remove", multiple=True, callback=_tag_list, metavar="TAG[,TAG...]",
              help="Tags to remove (repeatable). Only tags terc-tag wrote are removed; the original's stay.")
@click.option("--accept", is_flag=True, help="Mark the photos reviewed with their tags as they are.")
@click.option("--unreview", is_flag=True,
              help="Hand the photos back to the model: clear their reviewed mark; the next `tag` run tags them again.")
@model_option
@quiet_option
def command(photos, add, remove, accept, unreview, model_dir, quiet):
    """Correct the tags of photos in a tagged OUTPUT, and keep the correction.

    Each photo's copy in OUTPUT is rewritten atomically through the same
    lossless writer as `tag` (XMP dc:subject, IPTC Keywords, EXIF
    XPKeywords; pixels and every other field untouched), and the photo is
    marked reviewed: no later `tag` run changes its tags, not with --force,
    a new model or a new threshold. A correction made while a `tag` run works
    on the same OUTPUT is kept too. Keywords the original photo already held
    are never removed. `terc-tag train` learns from the corrected photos.
    A photo named twice (tagged/x.jpg tagged/./x.jpg) is corrected once.

    --unreview undoes the review: the next `tag` run predicts the photos
    again and writes the model's tags, as if no person had seen them.

    \b
    Examples:
      terc-tag correct tagged/iss071e123456.jpg --add Aurora --remove Day
      terc-tag correct tagged/burst/*.jpg --add "Sunrise Sunset"
      terc-tag correct tagged/iss071e123456.jpg --accept
      terc-tag correct tagged/iss071e123456.jpg --unreview

    Exit codes: 0 all corrected, 1 some copy could not be rewritten (the
    others are corrected), 2 usage error: an unknown tag, or a path that is
    not a tagged photo of an OUTPUT (then nothing changes).
    """
    from tagger.metadata import MetadataError
    from tagger.names import shown
    from tagger.review.correct import canonical_tags, correct, find_output

    if not (add or remove or accept or unreview):
        fail("say what to change: --add TAG, --remove TAG, --accept to keep the tags as they are, "
             "or --unreview to hand the photos back to the model")
    if unreview and (add or remove or accept):
        fail("--unreview hands the photos back to the model as they are: it takes no --add, --remove or --accept")
    vocabulary = open_bundle(model_dir).vocabulary
    canonical_tags(add + remove, vocabulary)  # every tag known before any photo changes
    by_output: dict[Path, list[str]] = {}
    for photo in photos:
        output, path = find_output(photo)
        by_output.setdefault(output, []).append(path)
    failed = False
    for output, paths in by_output.items():
        try:
            done = correct(output, paths, vocabulary, add=add, remove=remove, reviewed=not unreview)
        except (MetadataError, OSError) as exc:
            click.echo(f"terc-tag: {shown(output)}: {shown(str(getattr(exc, 'strerror', None) or exc))}", err=True)
            failed = True
            continue
        for photo in done:
            if photo.origin_unknown and remove:
                click.echo(f"terc-tag: {shown(photo.path)}: kept {', '.join(remove)}: terc-tag 0.3 or older tagged it "
                           "without recording which keywords the original held", err=True)
            elif photo.kept:
                click.echo(f"terc-tag: {shown(photo.path)}: kept {', '.join(photo.kept)}: the original photo holds it",
                           err=True)
            for note in photo.notes:
                click.echo(f"terc-tag: {shown(photo.path)}: {note}", err=True)
            if not quiet and unreview:
                click.echo(f"{shown(output / photo.path)}: handed back to the model (the next `tag` run tags it again)")
            elif not quiet:
                change = [f"+{t}" for t in photo.added] + [f"-{t}" for t in photo.removed]
                click.echo(f"{shown(output / photo.path)}: {' '.join(change) or 'accepted'} -> "
                           f"{', '.join(photo.tags) or '(no tags)'}")
    sys.exit(EXIT_SOME_FAILED if failed else EXIT_OK)
