"""Stage 5: tell people what happened, on screen, in Markdown, or as a figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tagger.names import shown

if TYPE_CHECKING:
    from tagger.similar.index import Answer
    from tagger.tagging.pipeline import Summary

#: How many failed or skipped files the on-screen summary names before it counts the rest.
LISTED = 10


def console() -> Console:
    """A console for our tables: wide enough for them even when output goes to a file or cron mail."""
    plain = Console()
    return plain if plain.is_terminal else Console(width=150)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_summary(summary: Summary, console: Console) -> None:
    """The one-screen summary of a ``tag`` run."""
    s = summary
    if s.dry_run:
        console.print(f"Dry run: {s.pending} photos would be tagged, {s.unchanged} are already done, "
                      f"{len(s.skipped)} files skipped. Nothing was written.")
        return
    speed = f" ({s.photos_per_second:.1f} photos/s over {s.seconds:.1f} s)" if s.tagged or s.failed else ""
    known = f"{len(s.known_failures)} known failures, " if s.known_failures else ""
    console.print(f"[bold]{len(s.tagged)}[/] photos tagged into {escape(shown(s.output))}, {s.unchanged} already done, "
                  f"{len(s.failed)} failed, {known}{len(s.skipped)} skipped{speed}.")
    if s.codes_added:
        console.print(f"{s.codes_added} photos tagged before got their similarity code.")
    if s.codes_missing:
        console.print(f"{s.codes_missing} photos tagged before have no similarity code from this model yet; "
                      "`terc-tag tag INPUT OUTPUT --add-codes` adds them without rewriting any photo.")
    if s.tag_counts:
        table = Table("tag", "photos", title="Tags written this run", title_justify="left")
        for tag, count in s.tag_counts.most_common():
            table.add_row(tag, str(count))
        console.print(table)
    known_rows = [(name, f"{reason} (since {since})") for name, reason, since in s.known_failures]
    for title, rows in (("Failed", s.failed),
                        ("Partly tagged: these fields were left as they were", s.partly_tagged),
                        ("Known failures, unchanged since they failed (--retry-failed retries them)", known_rows),
                        ("Skipped", s.skipped)):
        if rows:
            console.print(f"[bold]{title}:[/]")
            for name, reason in rows[:LISTED]:
                console.print(f"  {shown(name)}: {shown(reason)}", markup=False, highlight=False)
            if len(rows) > LISTED:
                console.print(f"  ... and {len(rows) - LISTED} more (all in --json-summary)")


def evaluation_table(report: dict) -> Table:
    if report.get("single_label"):
        return _class_table(report)
    table = Table("tag", "support", "accuracy", "baseline", "precision", "recall", "F1", "bal. acc.", "MCC", "AP",
                  title=f"{report['n_images']} photos, model {report.get('model', '')}", title_justify="left")
    for tag, m in report["tags"].items():
        beats = m["accuracy"] >= m["baseline_accuracy"]
        table.add_row(tag, str(m["support"]), f"[{'green' if beats else 'red'}]{m['accuracy']:.3f}[/]",
                      _fmt(m["baseline_accuracy"]), _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]),
                      _fmt(m["balanced_accuracy"]), _fmt(m["mcc"]), _fmt(m["average_precision"]))
    return table


def _class_table(report: dict) -> Table:
    """Per class: the top class's precision, recall and F1, beside the baseline's (always the majority class)."""
    table = Table("class", "support", "precision", "recall", "F1", "baseline F1", "AP",
                  title=f"{report['n_images']} images, model {report.get('model', '')}", title_justify="left")
    for tag, m in report["tags"].items():
        beats = m["f1"] >= m["baseline_f1"]
        table.add_row(tag, str(m["support"]), _fmt(m["precision"]), _fmt(m["recall"]),
                      f"[{'green' if beats else 'red'}]{m['f1']:.3f}[/]", _fmt(m["baseline_f1"]),
                      _fmt(m["average_precision"]))
    return table


def confusion_table(report: dict) -> Table | None:
    """For single-label vocabularies: true tag against highest-probability tag."""
    if not report.get("confusion_matrix"):
        return None
    table = Table("true \\ predicted", *report["vocabulary"], title="Confusion matrix", title_justify="left")
    for i, (tag, row) in enumerate(zip(report["vocabulary"], report["confusion_matrix"], strict=False)):
        table.add_row(tag, *(f"[bold]{n}[/]" if i == j else str(n) for j, n in enumerate(row)))
    return table


def overall_lines(report: dict) -> list[str]:
    o = report["overall"]
    if report.get("single_label"):
        return [f"accuracy {o['accuracy']:.3f} (baseline {o['baseline_accuracy']:.3f}: always {o['baseline_class']})"
                + (f"; {o['no_class']} images below the threshold got no class" if o["no_class"] else ""),
                f"macro F1 {o['macro_f1']:.3f} (baseline {o['baseline_macro_f1']:.3f}), mAP "
                f"{_fmt(o['mean_average_precision'])}; {o['classes_at_or_above_baseline_f1']}/"
                f"{sum(m['support'] > 0 for m in report['tags'].values())} classes at or above their baseline F1"]
    return [
        f"exact match {o['exact_match']:.3f} (baseline {o['baseline_exact_match']:.3f}); "
        f"Hamming loss {o['hamming_loss']:.3f} (baseline {o['baseline_hamming_loss']:.3f})",
        f"macro F1 {o['macro_f1']:.3f}, micro F1 {o['micro_f1']:.3f}, mAP {_fmt(o['mean_average_precision'])}; "
        f"{o['tags_at_or_above_baseline']}/{len(report['tags'])} tags at or above their baseline accuracy",
    ] + _retrieval_lines(report.get("retrieval"))


def _retrieval_lines(r: dict | None) -> list[str]:
    """How well the photos' similarity codes find each other, beside a random order."""
    if not r or "map_at_64" not in r:
        return []
    sequence = (f"; a frame of the same sequence among the 5 nearest for {r['same_sequence_at_5']:.3f} of "
                f"{r['queries_with_sequence_mate']} photos" if "same_sequence_at_5" in r else "")
    return [f"similar photos ({r['bits']}-bit codes): mAP@64 {r['map_at_64']:.3f}, precision@10 "
            f"{r['precision_at_10']:.3f} (random order {r['chance_precision']:.3f}; relevant = shares a tag)"
            f"{sequence}"]


def markdown(report: dict) -> str:
    """The evaluation as a Markdown report (the README's tables come from here)."""
    if report.get("single_label"):
        columns = {"precision": "precision", "recall": "recall", "F1": "f1", "baseline F1": "baseline_f1",
                   "AP": "average_precision"}
    else:
        columns = {"accuracy": "accuracy", "baseline": "baseline_accuracy", "precision": "precision",
                   "recall": "recall", "F1": "f1", "balanced acc.": "balanced_accuracy", "MCC": "mcc",
                   "AP": "average_precision"}
    rows = [f"| {'class' if report.get('single_label') else 'tag'} | support | " + " | ".join(columns) + " |",
            "|---|---:" + "|---:" * len(columns) + "|"]
    for tag, m in report["tags"].items():
        rows.append(f"| {tag} | {m['support']} | " + " | ".join(_fmt(m[k]) for k in columns.values()) + " |")
    text = [f"# Evaluation of {report.get('model', 'model')}", "",
            f"{report['n_images']} photos, thresholds: {report.get('threshold_choice', '')}.", "",
            *rows, "", *(f"- {line}" for line in overall_lines(report))]
    if report.get("confusion_matrix"):
        vocab = report["vocabulary"]
        text += ["", "Confusion matrix (rows: true tag, columns: highest-probability tag):", "",
                 "| true \\ predicted | " + " | ".join(vocab) + " |", "|---" * (len(vocab) + 1) + "|"]
        text += [f"| {tag} | " + " | ".join(map(str, row)) + " |"
                 for tag, row in zip(vocab, report["confusion_matrix"], strict=False)]
    if report.get("failed"):
        text += ["", f"{len(report['failed'])} photos could not be read and were left out."]
    return "\n".join(text) + "\n"


def figure(report: dict, path: str | Path) -> None:
    """Per-tag accuracy against the baseline and precision-recall curves, as one PNG; a confusion matrix
    beside per-class F1 for a single-label model.

    A ``Figure`` of its own, without pyplot: no backend to choose, no global figure to close."""
    from matplotlib.figure import Figure

    if report.get("single_label"):
        return _class_figure(report, path)
    tags = list(report["tags"])
    fig = Figure(figsize=(14, 5.5))
    bars, curves = fig.subplots(1, 2)
    x = range(len(tags))
    bars.bar([i - 0.2 for i in x], [report["tags"][t]["accuracy"] for t in tags], 0.4, label="model")
    bars.bar([i + 0.2 for i in x], [report["tags"][t]["baseline_accuracy"] for t in tags], 0.4,
             label="baseline (majority value)")
    bars.set_xticks(list(x), tags, rotation=45, ha="right")
    bars.set_ylim(min(0.5, min(report["tags"][t]["baseline_accuracy"] for t in tags)), 1.0)
    bars.set_ylabel("accuracy")
    bars.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    bars.set_title("Per-tag accuracy, model against baseline")
    for tag in tags:
        curve = report["curves"][tag]
        if report["tags"][tag]["support"]:
            ap = report["tags"][tag]["average_precision"]
            curves.plot(curve["recall"], curve["precision"], label=f"{tag} (AP {ap:.2f})")
    curves.set_xlabel("recall")
    curves.set_ylabel("precision")
    curves.set_title("Precision-recall curves")
    curves.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _class_figure(report: dict, path: str | Path) -> None:
    from matplotlib.figure import Figure

    classes, matrix = list(report["tags"]), np.array(report["confusion_matrix"])
    fig = Figure(figsize=(15, 6.5))
    bars, grid = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.2]})
    x = np.arange(len(classes))
    bars.bar(x - 0.2, [report["tags"][c]["f1"] for c in classes], 0.4, label="model")
    bars.bar(x + 0.2, [report["tags"][c]["baseline_f1"] for c in classes], 0.4,
             label=f"baseline (always {report['overall']['baseline_class']})")
    bars.set_xticks(x, classes, rotation=45, ha="right")
    bars.set_ylim(0, 1.0)
    bars.set_ylabel("F1")
    bars.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    bars.set_title(f"Per-class F1 (accuracy {report['overall']['accuracy']:.3f}, "
                   f"baseline {report['overall']['baseline_accuracy']:.3f})")
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    grid.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(matrix.shape):
        if matrix[i, j]:
            grid.text(j, i, str(matrix[i, j]), ha="center", va="center",
                      color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
    grid.set_xticks(x, classes, rotation=45, ha="right")
    grid.set_yticks(x, classes)
    grid.set_xlabel("predicted (top class)")
    grid.set_ylabel("true class")
    grid.set_title("Confusion matrix (colour: share of the true class)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def similar_table(answer: Answer) -> Table:
    """One query's nearest photos, nearest first."""
    query = shown(answer.query)
    table = Table("#", "photo (in OUTPUT)", "distance", "tags", title=f"Like {escape(query)}",
                  title_justify="left", min_width=len(query) + 5)  # the title on one line
    for rank, match in enumerate(answer.results, 1):
        table.add_row(str(rank), escape(shown(match.path)), str(match.distance), escape(", ".join(match.tags)))
    return table


def contact_sheet(answers: Sequence[Answer], output: Path, bits: int) -> str:
    """A self-contained HTML page: each query beside its nearest photos, as thumbnails with tags.

    Thumbnails are embedded (JPEG data URIs), so the page can be mailed or
    moved; every name is shown escaped (:func:`tagger.names.shown`), and every name and tag HTML-escaped.
    """
    from html import escape as html_text

    def html(text: str) -> str:
        return html_text(shown(text))

    def card(label: str, source: Path, caption: str) -> str:
        image = _thumbnail_uri(source)
        picture = f'<img src="{image}" alt="{html(label)}">' if image else '<div class="missing">no preview</div>'
        return f'<figure>{picture}<figcaption><b>{html(label)}</b><br>{html(caption)}</figcaption></figure>'

    sections = []
    for answer in answers:
        if answer.error:
            sections.append(f"<section><h2>{html(answer.query)}</h2><p class=error>{html(answer.error)}</p></section>")
            continue
        own = output / answer.query if not Path(answer.query).exists() else Path(answer.query)
        cells = [card("query", own, answer.query)]
        cells += [card(f"{m.distance} bits off", output / m.path, f"{m.path}: {', '.join(m.tags) or 'no tags'}")
                  for m in answer.results]
        sections.append(f"<section><h2>Like {html(answer.query)}</h2><div class=row>{''.join(cells)}</div></section>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>terc-tag: similar photos</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; }}
.row {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; width: 180px; background: white; padding: 6px; border: 1px solid #ddd; }}
figure:first-child {{ border: 2px solid #2a6ebb; }}
img {{ width: 180px; height: 180px; object-fit: contain; background: #111; }}
figcaption {{ font-size: 12px; word-break: break-all; }}
.missing {{ width: 180px; height: 180px; background: #eee; }}
.error {{ color: #b00; }}
</style></head><body>
<h1>Similar photos in {html(str(output))}</h1>
<p>Hamming distance between {bits}-bit codes: 0 is the same code.</p>
{"".join(sections)}
</body></html>
"""


def _thumbnail_uri(path: Path, size: int = 180) -> str | None:
    """A small JPEG of the photo as a data URI (as the review page shows it), or None if it cannot be read."""
    import base64

    from PIL import Image

    from tagger.decode import DecodeError
    from tagger.thumbnails import jpeg

    try:
        return "data:image/jpeg;base64," + base64.b64encode(jpeg(path, size)).decode()
    except (OSError, ValueError, DecodeError, Image.DecompressionBombError):
        return None
