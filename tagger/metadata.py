"""Stage 4a: read and write keywords in XMP, IPTC and EXIF, losslessly.

TERC keeps its tags in XMP ``dc:subject`` and IPTC ``Keywords`` (Lightroom
writes both); Windows Explorer reads EXIF ``XPKeywords``; Lightroom's keyword
hierarchy lives in ``lr:hierarchicalSubject``.  piexif can only write EXIF, so
this module uses pyexiv2 (the exiv2 C++ library), which edits all three
in memory without re-encoding pixels and keeps every other field.
"""

from __future__ import annotations

import struct
from typing import Iterable, Sequence

import pyexiv2

XMP_SUBJECT = "Xmp.dc.subject"
XMP_HIERARCHICAL = "Xmp.lr.hierarchicalSubject"
IPTC_KEYWORDS = "Iptc.Application2.Keywords"
EXIF_XPKEYWORDS = "Exif.Image.XPKeywords"

pyexiv2.set_log_level(4)  # exiv2's warnings would go to stderr; errors still raise


class MetadataError(Exception):
    """Metadata that exiv2 cannot parse or write; the message says why."""


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if str(v)]


def _unique(words: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    result = []
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
        with pyexiv2.ImageData(data) as image:
            xmp = image.read_xmp()
            iptc = image.read_iptc()
            exif = image.read_exif()
    except Exception as exc:  # exiv2 raises RuntimeError and others on bad data
        raise MetadataError(f"unreadable metadata: {exc}") from None
    xp = exif.get(EXIF_XPKEYWORDS) or ""
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


_SOS, _EOI = 0xDA, 0xD9


def _segments_end(data: bytes) -> tuple[int, int] | None:
    """``(offset, marker)`` of a JPEG's first SOS or EOI marker; None if ``data`` is no well-formed JPEG.

    Every metadata segment (APPn, COM) lies before the first scan (SOS);
    after it come only compressed pixels, which exiv2 copies untouched.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 2 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in (_SOS, _EOI):
            return i, marker
        if marker == 0xFF:  # fill byte
            i += 1
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01 or i + 4 > len(data):  # out of place, or cut short
            return None
        else:
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def add_keywords(data: bytes, tags: Sequence[str]) -> bytes:
    """Return ``data`` with ``tags`` merged into XMP, IPTC and EXIF keywords.

    Each field keeps all its keywords; a tag already present (in any case) is
    not added again, so a rerun adds nothing.  Pixel data is not touched.

    exiv2 rewrites the whole file once per field, so for a JPEG only its
    header (the segments before the first scan, closed by an end marker) goes
    through exiv2 and the compressed scan is appended unchanged: the same
    bytes as editing the whole file, at a fraction of the cost for a 3 MB
    photo (benchmarks/metadata_write.py).
    """
    if not tags:
        return data
    end = _segments_end(data)
    if end and end[1] == _SOS:
        header = data[:end[0]] + b"\xff\xd9"
        edited = _add_keywords(header, tags)
        if edited == header:
            return data
        if _segments_end(edited) == (len(edited) - 2, _EOI):
            return edited[:-2] + data[end[0]:]
    return _add_keywords(data, tags)


def _add_keywords(data: bytes, tags: Sequence[str]) -> bytes:
    try:
        with pyexiv2.ImageData(data) as image:
            xmp_subject = _as_list(image.read_xmp().get(XMP_SUBJECT))
            iptc_keywords = _as_list(image.read_iptc().get(IPTC_KEYWORDS))
            xp_keywords = [w for w in (image.read_exif().get(EXIF_XPKEYWORDS) or "").split(";") if w]
            changes = [
                (image.modify_xmp, XMP_SUBJECT, xmp_subject, merge(xmp_subject, tags)),
                (image.modify_iptc, IPTC_KEYWORDS, iptc_keywords, merge(iptc_keywords, tags)),
                (image.modify_exif, EXIF_XPKEYWORDS, xp_keywords, merge(xp_keywords, tags)),
            ]
            changed = False
            for modify, key, before, after in changes:
                if after != before:
                    modify({key: ";".join(after) if key == EXIF_XPKEYWORDS else after})
                    changed = True
            return image.get_bytes() if changed else data
    except Exception as exc:
        raise MetadataError(f"cannot write tags, exiv2 rejects this photo's metadata: {exc}") from None
