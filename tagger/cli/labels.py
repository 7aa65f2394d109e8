"""``terc-tag labels DIR``."""

from __future__ import annotations

from pathlib import Path

import click

from tagger.cli.common import (
    class_map_option,
    echo_line,
    fail,
    folder_labels_option,
    follow_symlinks_option,
    labels_option,
    model_option,
    one_label_source,
    parse_vocabulary,
)
from tagger.errors import EXIT_OK, EXIT_SOME_FAILED


@click.command("labels")
@click.argument("folder", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--csv", "csv_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write 'file,tags' rows to this CSV instead of printing them.")
@labels_option
@class_map_option
@folder_labels_option
@click.option("--vocabulary", help="Tags to keep: comma-separated, or a file with one per line. "
                                   "Default: the model's vocabulary.")
@model_option
@follow_symlinks_option
def command(folder, csv_file, labels_file, class_map, folder_labels, vocabulary, model_dir, follow_symlinks):
    """Print each photo's tags as read from its metadata.

    Reads XMP dc:subject, IPTC Keywords, EXIF XPKeywords and the leaves of
    lr:hierarchicalSubject (Surface|Volcano gives Volcano), and keeps only
    the tags of the vocabulary: a model's own (default), or --vocabulary.

    \b
    Examples:
      terc-tag labels ./tagged
      terc-tag labels ./photos --csv labels.csv
      terc-tag labels ./hirise/images --labels ./hirise/labels.txt
      terc-tag labels ./eurosat --folder-labels
    """
    from tagger.cli.common import default_model
    from tagger.discover import discover
    from tagger.evaluate import read_card
    from tagger.labels import read_labels
    from tagger.names import shown
    from tagger.outputs import atomic_write, csv_bytes

    one_label_source(labels_file, folder_labels)
    found = discover(folder, follow_symlinks)
    vocab = None if labels_file or folder_labels else \
        parse_vocabulary(vocabulary) or read_card(model_dir or default_model())["vocabulary"]
    labels, errors = read_labels(folder, found.photos, vocab, labels_file, class_map, folder_labels,
                                 follow_symlinks)
    if not found.photos:
        fail(f"no JPEG, TIFF or PNG photos in {folder}")
    rows = [[shown(p), ";".join(tags)] for p, tags in sorted(labels.items())]
    if csv_file:
        atomic_write(csv_file, csv_bytes(["file", "tags"], rows))
        echo_line(f"{len(rows)} photos written to {csv_file}")
    else:
        for name, tags in rows:
            click.echo(f"{name}\t{tags}")
    for photo, reason in errors:
        click.echo(f"terc-tag: {shown(photo)}: {shown(reason)}", err=True)
    raise SystemExit(EXIT_SOME_FAILED if errors else EXIT_OK)
