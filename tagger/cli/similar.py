"""``terc-tag similar OUTPUT PHOTO...``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tagger.cli.common import backend_option, fail, model_option, open_bundle, quiet_option
from tagger.errors import EXIT_OK, EXIT_SOME_FAILED


@click.command("similar")
@click.argument("output", metavar="OUTPUT", required=False)
@click.argument("queries", metavar="PHOTO...", nargs=-1)
@click.option("--index", "index_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Deprecated: the OUTPUT folder, for scripts written before OUTPUT came first; then every "
                   "argument is a PHOTO.")
@click.option("-k", "k", type=click.IntRange(1, 10000), default=20, show_default=True,
              help="How many similar photos per query.")
@model_option
@backend_option
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the results as JSON: {\"queries\": [{\"query\", \"results\": [{\"path\", \"distance\", "
                   "\"tags\"}]}]}.")
@click.option("--html", "html_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a contact sheet: each query beside its similar photos, as thumbnails with tags.")
@quiet_option
def command(output, queries, index_dir, k, model_dir, backend, json_file, html_file, quiet):
    """Find the photos of a tagged OUTPUT most like each PHOTO.

    A PHOTO is a photo of OUTPUT (by its path, or its path relative to
    OUTPUT), answered from its stored code without decoding, or any other
    photo file, decoded and coded with the model that tagged OUTPUT (one
    model load for all queries). Photos are ranked by the Hamming distance
    between their similarity codes, which `terc-tag tag` stores for each
    photo it tags; the query's own photo is left out of its results.

    \b
    Examples:
      terc-tag similar tagged tagged/iss071e123456.jpg
      terc-tag similar tagged iss071e123456.jpg -k 50
      terc-tag similar tagged new/*.jpg --json similar.json --html similar.html

    Exit codes: 0 all answered, 1 some query could not be read (the others are
    answered), 2 OUTPUT has no usable index or a usage error.
    """
    from tagger.names import shown
    from tagger.similar.index import SimilarIndex, find_similar
    from tagger.tagging.report import console as make_console
    from tagger.tagging.report import contact_sheet, similar_table

    output_dir, queries = _output_and_queries(output, queries, index_dir, quiet)
    bundle = open_bundle(model_dir, backend)
    index = SimilarIndex(output_dir, bundle)
    if index.left_out and not quiet:
        click.echo(f"terc-tag: {index.left_out} tagged photos of {shown(output_dir)} have no code from this model and "
                   "are not searched (`terc-tag tag INPUT OUTPUT --add-codes` codes them)", err=True)
    answers = find_similar(index, queries, k)
    console = make_console()
    for answer in answers:
        if answer.error:
            click.echo(f"terc-tag: {shown(answer.query)}: {shown(answer.error)}", err=True)
        elif not quiet:
            console.print(similar_table(answer))
    try:
        if json_file:
            json_file.write_text(json.dumps({"queries": [a.as_dict() for a in answers]}, indent=1))
        if html_file:
            html_file.write_text(contact_sheet(answers, output_dir, index.codes.bits), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {exc.filename}: {exc.strerror}")
    sys.exit(EXIT_SOME_FAILED if any(a.error for a in answers) else EXIT_OK)


def _output_and_queries(output: str | None, queries: tuple[str, ...], index_dir: Path | None,
                        quiet: bool) -> tuple[Path, tuple[str, ...]]:
    """OUTPUT and the photos: ``OUTPUT PHOTO...``, or the deprecated ``PHOTO... --index OUTPUT``; one line and
    exit 2 for anything else."""
    usage = "terc-tag similar OUTPUT PHOTO..."
    if index_dir is None:
        if output is not None and Path(output).is_file():
            fail(f"{output} is a file; the tagged OUTPUT folder comes first: {usage}")
        if output is None or not queries:
            fail(f"give OUTPUT and then at least one PHOTO: {usage}")
        return Path(output), queries
    if output is not None and Path(output).is_dir():
        fail(f"OUTPUT given twice, {output} and --index {index_dir}; give it once, first: {usage}")
    if output is None:
        fail(f"give at least one PHOTO: {usage}")
    if not quiet:
        click.echo(f"terc-tag: warning: --index is deprecated; give OUTPUT first: {usage}", err=True)
    return index_dir, (output, *queries)
