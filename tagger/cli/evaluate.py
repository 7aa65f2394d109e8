"""``terc-tag evaluate [DIR]``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tagger.cli.common import (
    backend_option,
    batch_option,
    class_map_option,
    folder_labels_option,
    follow_symlinks_option,
    labels_option,
    model_option,
    one_label_source,
    open_session,
    show_progress,
    threshold_option,
    workers_option,
)
from tagger.errors import EXIT_OK


@click.command("evaluate")
@click.argument("folder", metavar="[DIR]", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option
@backend_option
@threshold_option
@labels_option
@class_map_option
@folder_labels_option
@click.option("--split", type=click.Choice(["all", "train", "validation", "test"]), default=None,
              help="Only the photos of DIR in this split of the model card (default without DIR: test; with DIR: all).")
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write every figure as JSON.")
@click.option("--markdown", "markdown_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the report as Markdown.")
@click.option("--figure", "figure_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a PNG: per-tag accuracy against the baseline, and precision-recall curves.")
@follow_symlinks_option
@batch_option
@workers_option
def command(folder, model_dir, backend, threshold, labels_file, class_map, folder_labels, split, json_file,
            markdown_file, figure_file, follow_symlinks, batch_size, workers):
    """Measure a model on photos whose true tags are known.

    Prints, per tag: support, accuracy, the naive baseline's accuracy (always
    predicting the tag's majority value), precision, recall, F1, balanced
    accuracy, MCC and average precision; then exact-match accuracy, Hamming
    loss and micro/macro F1. Without DIR it measures the model on its own
    held-out test split, if those photos can be found.

    \b
    Examples:
      terc-tag evaluate
      terc-tag evaluate ./labelled --json report.json --figure report.png
      terc-tag evaluate ./hirise/images --labels ./hirise/labels.txt --model models/hirise
      terc-tag evaluate ./eurosat --folder-labels --model models/eurosat
    """
    from tagger.cli.common import default_model
    from tagger.evaluate import evaluate, ground_truth
    from tagger.names import shown
    from tagger.tagging.report import confusion_table, evaluation_table, overall_lines
    from tagger.tagging.report import console as make_console

    one_label_source(labels_file, folder_labels)
    bundle = model_dir or default_model()
    console = make_console()
    truth = ground_truth(bundle, folder, split, labels_file, class_map, folder_labels, follow_symlinks)
    for name, reason in truth.unreadable:
        click.echo(f"terc-tag: {shown(name)}: {shown(reason)}", err=True)
    if truth.unlabelled:
        click.echo(f"terc-tag: {truth.unlabelled} photos carry no tag of the vocabulary and were left out", err=True)
    if truth.seen_in_training:
        click.echo(f"terc-tag: warning: {truth.seen_in_training} of these photos were used to train this model; "
                   "the figures overstate its accuracy (use --split test).", err=True)

    session = open_session(bundle, backend)
    report = evaluate(session, truth.folder, truth.labels, threshold, batch_size, workers, show_progress(),
                      follow_symlinks)
    console.print(evaluation_table(report))
    for line in overall_lines(report):
        console.print(line)
    confusion = confusion_table(report)
    if confusion:
        console.print(confusion)
    for item in report["failed"]:
        click.echo(f"terc-tag: {item['file']}: {item['reason']}", err=True)
    _write_reports(report, json_file, markdown_file, figure_file)
    raise SystemExit(EXIT_OK)


def _write_reports(report: dict, json_file: Path | None, markdown_file: Path | None, figure_file: Path | None) -> None:
    """The report as JSON, Markdown and a figure, where asked."""
    from tagger.tagging.report import figure, markdown

    if json_file:
        json_file.write_text(json.dumps({k: v for k, v in report.items() if k != "curves"}, indent=1))
    if markdown_file:
        markdown_file.write_text(markdown(report))
    if figure_file:
        figure(report, figure_file)
