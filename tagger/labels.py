"""Ground truth: which vocabulary tags each photo carries.

Labels come from the photos' own metadata (the way TERC keeps them), or from
a ``--labels`` file: a CSV of ``file,tags`` (tags separated by ``;``), or a
HiRISE-style ``file class_id`` list with a ``class_id,name`` class map.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tagger.discover import discover, read_inside
from tagger.errors import TercTagError
from tagger.metadata import MetadataError, read_keywords, vocabulary_tags
from tagger.names import unshown
from tagger.outputs import from_spreadsheet_text


class LabelsError(TercTagError):
    """Labels that cannot be read, or that do not fit the vocabulary; the message says why."""


def labels_from_metadata(root: Path, photos: Iterable[Path], vocabulary: Sequence[str],
                         follow_symlinks: bool = False) -> tuple[dict[Path, list[str]], list[tuple[Path, str]]]:
    """Vocabulary tags of each photo (relative path -> tags), plus unreadable ones."""
    labels, errors = {}, []
    for rel in photos:
        try:
            labels[rel] = vocabulary_tags(read_keywords(read_inside(root, rel, follow_symlinks)[0]), vocabulary)
        except OSError as exc:
            errors.append((rel, exc.strerror or str(exc)))
        except MetadataError as exc:
            errors.append((rel, str(exc)))
    return labels, errors


def read_labels_file(path: str | os.PathLike,
                     class_map: str | os.PathLike | None = None) -> tuple[dict[Path, list[str]], list[str]]:
    """Labels from a file, and the vocabulary it implies (in first-seen order).

    A ``file class_id`` list is recognised by having no header row and two
    whitespace-separated fields; it needs ``class_map`` (default:
    ``classmap.csv`` beside it).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise LabelsError(f"labels file {path} is empty")
    if "," not in lines[0] and len(lines[0].split()) == 2:
        return _read_class_id_list(path, lines, Path(class_map) if class_map else path.with_name("classmap.csv"))
    rows = list(csv.reader(lines))
    header = [h.strip().lower() for h in rows[0]]
    if len(header) < 2 or header[0] not in ("file", "filename", "path"):
        raise LabelsError(f"{path}: expected a CSV with a header 'file,tags' (or a 'file class_id' list)")
    labels: dict[Path, list[str]] = {}
    vocabulary: list[str] = []
    for row in rows[1:]:
        if not row:
            continue
        row = [from_spreadsheet_text(cell.strip()) for cell in row]  # our own CSVs escape formula-like cells
        tags = [t.strip() for t in (row[1] if len(row) > 1 else "").split(";") if t.strip()]
        labels[Path(unshown(row[0]))] = tags  # predictions.csv and `labels --csv` escape awkward names
        vocabulary += [t for t in tags if t not in vocabulary]
    return labels, vocabulary


def _read_class_id_list(path: Path, lines: list[str], class_map: Path) -> tuple[dict[Path, list[str]], list[str]]:
    try:
        names = {}
        for row in csv.reader(class_map.read_text(encoding="utf-8-sig").splitlines()):
            if len(row) >= 2 and row[0].strip().isdigit():
                names[row[0].strip()] = row[1].strip()
    except OSError as exc:
        raise LabelsError(f"{path} is a 'file class_id' list and needs a class map; "
                          f"cannot read {class_map}: {exc.strerror}") from None
    labels = {}
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in names:
            raise LabelsError(f"{path}:{number}: expected 'file class_id' with a class id from {class_map}")
        labels[Path(fields[0])] = [names[fields[1]]]
    return labels, [names[k] for k in sorted(names, key=int)]


def labels_from_folders(photos: Iterable[Path]) -> tuple[dict[Path, list[str]], list[str]]:
    """Each photo's class from the name of its parent folder (EuroSAT's layout: ``Forest/Forest_1.jpg``).

    Photos directly in the folder walked have no class (an empty list).
    Returns the labels and the classes found, sorted.
    """
    labels = {Path(rel): [Path(rel).parent.name] if Path(rel).parent != Path(".") else [] for rel in photos}
    return labels, sorted({tags[0] for tags in labels.values() if tags})


def match_labels(photos: Iterable[Path], labels: dict[Path, list[str]]) -> dict[Path, list[str]]:
    """Labels for ``photos`` from a labels file, matched by relative path or else by file name."""
    by_name = {Path(p).name: tags for p, tags in labels.items()}
    matched = {}
    for rel in photos:
        tags = labels.get(rel, by_name.get(rel.name))
        if tags is not None:
            matched[rel] = tags
    return matched


def read_labels(root: Path, photos: list[Path], vocabulary: Sequence[str] | None,
                labels_file: str | os.PathLike | None = None, class_map: str | os.PathLike | None = None,
                folder_labels: bool = False,
                follow_symlinks: bool = False) -> tuple[dict[Path, list[str]], list[tuple[Path, str]]]:
    """The true tags of ``photos`` from one source, and the photos whose metadata could not be read.

    A labels file (matched by relative path, else by file name), the parent
    folders' names, or else each photo's own metadata (the tags of
    ``vocabulary``, which only this last source needs).
    """
    if labels_file:
        return match_labels(photos, read_labels_file(labels_file, class_map)[0]), []
    if folder_labels:
        return labels_from_folders(photos)[0], []
    if vocabulary is None:
        raise ValueError("reading labels from metadata needs the vocabulary")
    return labels_from_metadata(root, photos, vocabulary, follow_symlinks)


@dataclass
class LabelSource:
    """Where training reads its labels, and the vocabulary they imply."""

    #: Relative path (or name) -> tags; None: each photo's own metadata, read as the photos are.
    labels: dict[Path, list[str]] | None
    #: The tags the labels name, in first-seen order; None for metadata (the vocabulary is given).
    vocabulary: list[str] | None
    #: How the model card names the source.
    name: str


def label_source(folder: Path, labels_file: str | os.PathLike | None = None,
                 class_map: str | os.PathLike | None = None, folder_labels: bool = False,
                 follow_symlinks: bool = False) -> LabelSource:
    """The one label source training was given: a labels file, the parent folders' names, or else the metadata."""
    if labels_file:
        return LabelSource(*read_labels_file(labels_file, class_map), "labels file")
    if folder_labels:
        return LabelSource(*labels_from_folders(discover(folder, follow_symlinks).photos), "parent folder names")
    return LabelSource(None, None, "metadata")
