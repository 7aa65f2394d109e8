"""A person's tags for photos of a tagged OUTPUT: written into the copies, and kept.

A correction edits the copy through the same lossless writer as ``tag``
(XMP, IPTC and EXIF keywords; nothing else), replaces it atomically, and
marks the photo *reviewed* in the state, all under OUTPUT's edit lock: a
``tag`` run working on the same OUTPUT at that moment keeps the person's
tags, and so does every later run (``--force``, a new model or threshold).

Only keywords terc-tag wrote can be removed.  A keyword the original photo
already held stays, and is reported as kept; so does every keyword of a
photo tagged before terc-tag 0.4, which did not record what it added.

A photo can also be handed back to the model (``reviewed=False``): its mark
is cleared, and so is its run key, so the next ``tag`` run predicts it again
and writes the model's tags, as for a photo no person has seen.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from tagger.discover import STATE_DIR_NAME
from tagger.errors import TercTagError
from tagger.metadata import edit_keywords, read_keywords, vocabulary_tags
from tagger.outputs import atomic_write, temp_folder
from tagger.state import EditLock, Record, State, state_file
from tagger.tagging.predictions import update_predictions


class CorrectionError(TercTagError):
    """A photo that cannot be corrected; the message says why in one line."""


@dataclass
class Corrected:
    path: str  # relative to OUTPUT
    tags: list[str]  # the vocabulary's tags the photo holds now
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # asked to remove, but the original photo holds them
    origin_unknown: bool = False  # tagged before 0.4, which did not record what it added: nothing is removed
    notes: list[str] = field(default_factory=list)  # keyword fields the writer left alone, and why
    reviewed: str | None = None  # the photo's mark now: when it was reviewed, or None when handed back
    was_reviewed: str | None = None  # its mark before, so that a change can be undone exactly

    def as_dict(self) -> dict:
        return {"path": self.path, "tags": self.tags, "added": self.added, "removed": self.removed,
                "kept": self.kept, "origin_unknown": self.origin_unknown, "notes": self.notes,
                "reviewed": self.reviewed, "was_reviewed": self.was_reviewed}


def canonical_tags(words: Iterable[str], vocabulary: Sequence[str]) -> list[str]:
    """``words`` spelled as the vocabulary spells them; a :class:`CorrectionError` names any that are not in it."""
    spelled = {tag.casefold(): tag for tag in vocabulary}
    words = [word.strip() for word in words if word.strip()]
    unknown = [word for word in words if word.casefold() not in spelled]
    if unknown:
        raise CorrectionError(f"{', '.join(unknown)}: not in the model's vocabulary ({', '.join(vocabulary)})")
    return list(dict.fromkeys(spelled[word.casefold()] for word in words))


def photo_key(path: str) -> str:
    """The one spelling of a photo's path inside OUTPUT, as the state stores it (``a/./b.jpg`` -> ``a/b.jpg``).

    Without it one photo named twice in a correction would be edited twice
    from one stale record, and lose which keywords terc-tag wrote.  An
    absolute path, or one that leaves OUTPUT, is a CorrectionError.
    """
    key = posixpath.normpath(path) if path else ""
    if not key or key == "." or key.startswith("/") or key == ".." or key.startswith("../"):
        raise CorrectionError(f"{path}: not a path inside OUTPUT")
    return key


def find_output(path: Path) -> tuple[Path, str]:
    """The tagged OUTPUT folder holding ``path``, and the photo's path inside it."""
    resolved = Path(path).resolve()
    for folder in resolved.parents:
        if state_file(folder).is_file():
            return folder, resolved.relative_to(folder).as_posix()
    raise CorrectionError(f"{path}: not inside a tagged OUTPUT folder (none of its folders holds "
                          f"{STATE_DIR_NAME}/state.sqlite)")


def correct(output: Path, paths: Sequence[str], vocabulary: Sequence[str], *, add: Sequence[str] = (),
            remove: Sequence[str] = (), reviewed: bool = True) -> list[Corrected]:
    """Add ``add`` to and remove ``remove`` from each photo of OUTPUT in ``paths``, and mark it reviewed.

    With neither, the photos are accepted as they are.  ``add`` and
    ``remove`` must be tags of ``vocabulary`` (ValueError otherwise).  With
    ``reviewed=False`` the photos are handed back to the model instead: the
    mark is cleared and the next ``tag`` run tags them again.  Each photo is
    corrected once however often, and however spelled, ``paths`` names it.
    Every path is checked before any photo changes (CorrectionError).  A
    photo whose copy cannot be rewritten raises MetadataError or OSError;
    the photos before it stay corrected.
    """
    add, remove = canonical_tags(add, vocabulary), canonical_tags(remove, vocabulary)
    both = set(add) & set(remove)
    if both:
        raise CorrectionError(f"{', '.join(sorted(both))}: both added and removed")
    output = Path(output)
    paths = list(dict.fromkeys(photo_key(path) for path in paths))
    with EditLock(output):
        with State.reading(output) as reader:  # read-only first: a bad path changes no file
            if reader is None:
                raise CorrectionError(f"{output}: not a tagged OUTPUT folder (no {STATE_DIR_NAME}/state.sqlite)")
            for path in paths:
                _tagged_record(reader, output, path)
        state = State(output)
        try:
            records = [_tagged_record(state, output, path) for path in paths]
            done = [_correct_one(output, record, vocabulary, add, remove, reviewed, state) for record in records]
            update_predictions(output, [r for c in done if (r := state.get(c.path)) is not None])
        finally:
            state.close()
    return done


def _tagged_record(state: State, output: Path, path: str) -> Record:
    record = state.get(path)
    if record is None:
        raise CorrectionError(f"{path}: not a photo terc-tag tagged in {output}")
    if record.status != "tagged":
        raise CorrectionError(f"{path}: terc-tag could not tag it ({record.error}), so it has no tags to correct")
    copy = output / path
    if copy.is_symlink() or not copy.is_file():
        raise CorrectionError(f"{path}: its copy in {output} is missing (the next `terc-tag tag` run restores it)")
    return record


def _correct_one(output: Path, record: Record, vocabulary: Sequence[str], add: Sequence[str], remove: Sequence[str],
                 reviewed: bool, state: State) -> Corrected:
    copy = output / record.path
    data = copy.read_bytes()
    ours = {word.casefold() for word in record.written or []}
    removable = [tag for tag in remove if tag.casefold() in ours]
    edited = edit_keywords(data, add, removable)
    had = {word.casefold() for word in edited.had}
    present = {word.casefold() for word in read_keywords(data)}
    if edited.data != data:
        atomic_write(copy, edited.data, copy.stat().st_mode & 0o777, temp_folder(output))
    tags = vocabulary_tags(read_keywords(edited.data), vocabulary)
    mark = datetime.now(timezone.utc).isoformat(timespec="seconds") if reviewed else None
    kept_written = [word for word in record.written or [] if word not in removable]
    written = kept_written + [tag for tag in add if tag.casefold() not in had]
    # Handed back: an empty run key matches no run, so the next `tag` run predicts the photo again.
    state.save([replace(record, tags=tags, reviewed=mark, written=written,
                        run_key=record.run_key if reviewed else "")])
    return Corrected(record.path, tags, added=[tag for tag in add if tag.casefold() not in present],
                     removed=[tag for tag in removable if tag.casefold() in present],
                     kept=[tag for tag in remove if tag not in removable and tag.casefold() in present],
                     origin_unknown=record.written is None, notes=edited.notes, reviewed=mark,
                     was_reviewed=record.reviewed)

