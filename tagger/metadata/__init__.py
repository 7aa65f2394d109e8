"""Stage 4a: read and write keywords in XMP, IPTC and EXIF, losslessly.

TERC keeps its tags in XMP ``dc:subject`` and IPTC ``Keywords`` (Lightroom
writes both); Windows Explorer reads EXIF ``XPKeywords``; Lightroom's keyword
hierarchy lives in ``lr:hierarchicalSubject``.  piexif can only write EXIF.

Reading uses pyexiv2 (the exiv2 C++ library), which understands every
place keywords hide.  Writing does not: exiv2 re-serialises whatever it
edits (IPTC times gain a time zone, maker notes and XMP are rewritten, TIFF
pages can be lost), so the three keyword fields are written by this
package's own narrow writer (``xmp``, ``iptc``, ``tiff``, ``write``), which
changes those fields and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import pyexiv2

from tagger.errors import TercTagError
from tagger.metadata import write

XMP_SUBJECT = "Xmp.dc.subject"
XMP_HIERARCHICAL = "Xmp.lr.hierarchicalSubject"
IPTC_KEYWORDS = "Iptc.Application2.Keywords"
EXIF_XPKEYWORDS = "Exif.Image.XPKeywords"

class MetadataError(TercTagError):
    """Metadata that cannot be read, or a photo where no keyword field can be written; the message says why."""


def _as_list(value: str | Iterable[object] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if str(v)]


def _unique(words: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    result: list[str] = []
    for word in words:
        word = word.strip()
        if word and word.casefold() not in seen:
            seen.add(word.casefold())
            result.append(word)
    return result


def read_keywords(data: bytes) -> list[str]:
    """All keywords in a photo, from every place TERC and Lightroom put them.

    ``lr:hierarchicalSubject`` entries count by their leaf (``Surface|Volcano``
    gives ``Volcano``).  Duplicates are dropped case-insensitively.
    """
    try:
        pyexiv2.set_log_level(4)  # exiv2's warnings would go to stderr; errors still raise
        with pyexiv2.ImageData(data) as image:
            xmp = image.read_xmp()
            iptc = image.read_iptc()
            exif = image.read_exif()
    except Exception as exc:  # exiv2 raises RuntimeError and others on bad data
        raise MetadataError(f"unreadable metadata: {exc}") from None
    xp = (exif.get(EXIF_XPKEYWORDS) or "").rstrip("\x00")  # Windows ends it with a NUL
    leaves = [h.split("|")[-1] for h in _as_list(xmp.get(XMP_HIERARCHICAL))]
    return _unique(
        _as_list(xmp.get(XMP_SUBJECT)) + _as_list(iptc.get(IPTC_KEYWORDS)) + xp.split(";") + leaves
    )


def vocabulary_tags(keywords: Iterable[str], vocabulary: Sequence[str]) -> list[str]:
    """The keywords that belong to ``vocabulary``, spelled as the vocabulary spells them."""
    canonical = {tag.casefold(): tag for tag in vocabulary}
    present = {canonical[k.casefold()] for k in keywords if k.casefold() in canonical}
    return [tag for tag in vocabulary if tag in present]


def merge(existing: Sequence[str], new: Iterable[str]) -> list[str]:
    """``existing`` in order, then each of ``new`` not already there (case-insensitive)."""
    have = {word.casefold() for word in existing}
    added = [word for word in _unique(new) if word.casefold() not in have]
    return list(existing) + added


class Edited(NamedTuple):
    data: bytes
    notes: list[str]  # one per field left alone, and why
    had: list[str]  # the keywords the edited fields held before (none when there was nothing to do)


def edit_keywords(data: bytes, add: Sequence[str], remove: Sequence[str] = ()) -> Edited:
    """``data`` with ``add`` merged into XMP, IPTC and EXIF keywords and ``remove`` taken out of them.

    Each field keeps all its keywords but those in ``remove`` (compared
    case-insensitively); a tag already present (in any case) is not added
    again, so a rerun adds nothing.  Nothing but the keyword fields changes:
    not another field, frame or pixel (:mod:`tagger.metadata.write`).  A
    field that cannot be written safely is left as it was and named in the
    notes; a photo where no field can be written raises MetadataError.
    """
    gone = {word.casefold() for word in remove}
    if not add and not gone:
        return Edited(data, [], [])
    had: list[str] = []

    def change(existing: list[str]) -> tuple[list[str], list[str]]:
        had.extend(existing)
        kept = [word for word in existing if word.casefold() not in gone]
        return [word for word in existing if word.casefold() in gone], merge(kept, add)[len(kept):]

    try:
        edited, notes = write.write_keywords(data, change)
    except ValueError as exc:
        raise MetadataError(f"cannot write tags: {exc}") from None
    return Edited(edited, notes, _unique(had))


def write_keywords(data: bytes, tags: Sequence[str]) -> tuple[bytes, list[str]]:
    """``data`` with ``tags`` added (:func:`edit_keywords`), and the notes on fields left alone."""
    edited = edit_keywords(data, tags)
    return edited.data, edited.notes


def add_keywords(data: bytes, tags: Sequence[str]) -> bytes:
    """:func:`write_keywords` without its notes."""
    return edit_keywords(data, tags).data
