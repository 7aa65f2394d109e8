"""Stage 5: tell people what happened, on screen, in Markdown, or as a figure."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

#: How many failed or skipped files the on-screen summary names before it counts the rest.
LISTED = 10


def console() -> Console:
    """A console for our tables: wide enough for them even when output goes to a file or cron mail."""
    plain = Console()
    return plain if plain.is_terminal else Console(width=150)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_summary(summary, console: Console) -> None:
    """The one-screen summary of a ``tag`` run."""
    s = summary
    if s.dry_run:
        console.print(f"Dry run: {s.pending} photos would be tagged, {s.unchanged} are already done, "
                      f"{len(s.skipped)} files skipped. Nothing was written.")
        return
    speed = f" ({s.photos_per_second:.1f} photos/s over {s.seconds:.1f} s)" if s.tagged or s.failed else ""
    known = f"{len(s.known_failures)} known failures, " if s.known_failures else ""
    console.print(f"[bold]{len(s.tagged)}[/] photos tagged into {s.output}, {s.unchanged} already done, "
                  f"{len(s.failed)} failed, {known}{len(s.skipped)} skipped{speed}.")
    if s.tag_counts:
        table = Table("tag", "photos", title="Tags written this run", title_justify="left")
        for tag, count in s.tag_counts.most_common():
            table.add_row(tag, str(count))
        console.print(table)
    known = [(name, f"{reason} (since {since})") for name, reason, since in s.known_failures]
    for title, rows in (("Failed", s.failed),
                        ("Partly tagged: these fields were left as they were", s.partly_tagged),
                        ("Known failures, unchanged since they failed (--retry-failed retries them)", known),
                        ("Skipped", s.skipped)):
        if rows:
            console.print(f"[bold]{title}:[/]")
            for name, reason in rows[:LISTED]:
                console.print(f"  {name}: {reason}", markup=False, highlight=False)
            if len(rows) > LISTED:
                console.print(f"  ... and {len(rows) - LISTED} more (all in --json-summary)")


def evaluation_table(report: dict) -> Table:
    table = Table("tag", "support", "accuracy", "baseline", "precision", "recall", "F1", "bal. acc.", "MCC", "AP",
                  title=f"{report['n_images']} photos, model {report.get('model', '')}", title_justify="left")
    for tag, m in report["tags"].items():
        beats = m["accuracy"] >= m["baseline_accuracy"]
        table.add_row(tag, str(m["support"]), f"[{'green' if beats else 'red'}]{m['accuracy']:.3f}[/]",
                      _fmt(m["baseline_accuracy"]), _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]),
                      _fmt(m["balanced_accuracy"]), _fmt(m["mcc"]), _fmt(m["average_precision"]))
    return table


def confusion_table(report: dict) -> Table | None:
    """For single-label vocabularies: true tag against highest-probability tag."""
    if not report.get("confusion_matrix"):
        return None
    table = Table("true \\ predicted", *report["vocabulary"], title="Confusion matrix", title_justify="left")
    for i, (tag, row) in enumerate(zip(report["vocabulary"], report["confusion_matrix"])):
        table.add_row(tag, *(f"[bold]{n}[/]" if i == j else str(n) for j, n in enumerate(row)))
    return table


def overall_lines(report: dict) -> list[str]:
    o = report["overall"]
    return [
        f"exact match {o['exact_match']:.3f} (baseline {o['baseline_exact_match']:.3f}); "
        f"Hamming loss {o['hamming_loss']:.3f} (baseline {o['baseline_hamming_loss']:.3f})",
        f"macro F1 {o['macro_f1']:.3f}, micro F1 {o['micro_f1']:.3f}, mAP {_fmt(o['mean_average_precision'])}; "
        f"{o['tags_at_or_above_baseline']}/{len(report['tags'])} tags at or above their baseline accuracy",
    ]


def markdown(report: dict) -> str:
    """The evaluation as a Markdown report (the README's tables come from here)."""
    rows = ["| tag | support | accuracy | baseline | precision | recall | F1 | balanced acc. | MCC | AP |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for tag, m in report["tags"].items():
        rows.append(f"| {tag} | {m['support']} | " + " | ".join(_fmt(m[k]) for k in (
            "accuracy", "baseline_accuracy", "precision", "recall", "f1", "balanced_accuracy", "mcc",
            "average_precision")) + " |")
    text = [f"# Evaluation of {report.get('model', 'model')}", "",
            f"{report['n_images']} photos, thresholds: {report.get('threshold_choice', '')}.", "",
            *rows, "", *(f"- {line}" for line in overall_lines(report))]
    if report.get("confusion_matrix"):
        vocab = report["vocabulary"]
        text += ["", "Confusion matrix (rows: true tag, columns: highest-probability tag):", "",
                 "| true \\ predicted | " + " | ".join(vocab) + " |", "|---" * (len(vocab) + 1) + "|"]
        text += [f"| {tag} | " + " | ".join(map(str, row)) + " |" for tag, row in zip(vocab, report["confusion_matrix"])]
    if report.get("failed"):
        text += ["", f"{len(report['failed'])} photos could not be read and were left out."]
    return "\n".join(text) + "\n"


def figure(report: dict, path: str | Path) -> None:
    """Per-tag accuracy against the baseline, and precision-recall curves, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = list(report["tags"])
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(14, 5.5))
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
    plt.close(fig)
