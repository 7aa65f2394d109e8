"""``terc-tag fit-codes DIR [--model M]``."""

from __future__ import annotations

from pathlib import Path

import click

from tagger.cli.common import (
    code_bits_option,
    echo_line,
    fail,
    follow_symlinks_option,
    model_option,
    open_bundle,
    progress_log,
    quiet_option,
)
from tagger.errors import EXIT_OK


@click.command("fit-codes")
@click.argument("folder", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option
@code_bits_option
@click.option("--unsupervised", is_flag=True,
              help="Ignore the photos' tags: fit PCA-ITQ codes on the pixels alone.")
@click.option("--views", type=click.IntRange(1, 8), default=2, show_default=True,
              help="Views of each photo to fit on: 1 the photo, 2 also its mirror image.")
@follow_symlinks_option
@quiet_option
def command(folder, model_dir, code_bits, unsupervised, views, follow_symlinks, quiet):
    """Fit a model bundle's similarity codes on the photos of DIR.

    Writes codes.npz and codes.json into the bundle, leaving its tag model
    as it is: archives tagged with it stay tagged, and `terc-tag tag
    --add-codes` gives their photos codes. Photos carrying tags of the
    model's vocabulary teach the codes that photos sharing tags, and frames
    of one sequence most of all, belong together; a folder without such
    tags (or --unsupervised) gets PCA-ITQ codes of the pixels alone. The
    model card's test photos, or else a fifth of the sequences, are held
    out and measure the codes (mAP@64, precision@10, same sequence @5).
    `terc-tag train` fits codes itself; this is for bundles without them.

    \b
    Examples:
      terc-tag fit-codes ./labelled --model models/mine
      terc-tag fit-codes ./any-photos --model models/mine --unsupervised --code-bits 128
    """
    if code_bits == 0:
        fail("--code-bits 0 fits nothing; give a multiple of 64")
    bundle = open_bundle(model_dir)
    from tagger.similar.codes import fit_codes

    card = fit_codes(bundle, folder, bits=code_bits, views=views, use_tags=not unsupervised,
                     follow_symlinks=follow_symlinks, log=progress_log(quiet))
    metrics = card.get("metrics", {}).get("test", {})
    if not quiet:
        echo_line(f"{card['bits']}-bit {card['method']} codes written to {bundle.path}; held-out photos: "
                   + (", ".join(f"{k} {v}" for k, v in metrics.items()) or "too few to measure"))
    raise SystemExit(EXIT_OK)
