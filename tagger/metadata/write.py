"""Add and remove keywords in a JPEG, TIFF or PNG, changing nothing else.

Each of the three fields is edited in its own container, by the narrowest
change that format allows:

* JPEG: XMP (APP1), EXIF (APP1) and the Photoshop resources with IPTC
  (APP13) are each one segment; only those segments change, every other
  segment and the compressed image are copied byte for byte.
* TIFF: the XMP packet (tag 700), the IPTC block (33723) and XPKeywords
  live in IFD0, which is relocated (:mod:`tagger.metadata.tiff`), so strips,
  tiles, later pages and sub-IFDs keep their offsets.
* PNG: XMP in its ``iTXt`` chunk (recompressed if it was compressed) and EXIF
  in ``eXIf``; PNG has no standard
  place for IPTC, so it gets none (its keywords live in XMP).

A field that cannot be written safely (its block is malformed, or the result
would not fit a JPEG segment) is left as it was and named in the returned
notes; only if no field could be written is the photo refused.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import TypeVar

import tagger.metadata.iptc as iptc
import tagger.metadata.tiff as tiff
import tagger.metadata.xmp as xmp
from tagger.errors import TercTagError

XMP_ID, EXIF_ID, PHOTOSHOP_ID = b"http://ns.adobe.com/xap/1.0/\x00", b"Exif\x00\x00", b"Photoshop 3.0\x00"
APP0, APP1, APP2, APP13, SOS, EOI = 0xE0, 0xE1, 0xE2, 0xED, 0xDA, 0xD9
MPF_ID = b"MPF\x00"
PNG_SIGNATURE, PNG_XMP_KEY = b"\x89PNG\r\n\x1a\n", b"XML:com.adobe.xmp"
EMPTY_TIFF = b"II*\x00\x08\x00\x00\x00" + b"\x00\x00" + b"\x00\x00\x00\x00"


class WriteError(TercTagError, ValueError):
    """The photo's container cannot be edited at all; the message says why."""


#: ``change(existing)``: for one field's keywords, those to remove (as spelled there) and those to append.
Change = Callable[[list[str]], tuple[list[str], list[str]]]


def write_keywords(data: bytes, change: Change) -> tuple[bytes, list[str]]:
    """``data`` with each keyword field edited by ``change``, and notes on the fields left alone.

    A field that ``change`` leaves as it is is not touched at all.
    """
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data, change)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(data, change)
    if data.startswith(PNG_SIGNATURE):
        return _png(data, change)
    raise WriteError("not a JPEG, TIFF or PNG file")


T = TypeVar("T")
U = TypeVar("U")


class _Notes(list[str]):
    def attempt(self, field: str, edit: Callable[[], T | None]) -> T | None:
        """``edit()``, or None with a note when the field cannot be written safely."""
        try:
            return edit()
        except ValueError as exc:
            self.append(f"{field} not written: {exc}")
            return None


def _xmp_packet(packet: bytes | None, change: Change) -> bytes | None:
    remove, add = change(xmp.subject(packet) if packet is not None else [])
    if not remove and not add:
        return None
    return xmp.edit_subject(packet, remove, add) if packet is not None else xmp.new_packet(add)


def _iptc_block(block: bytes | None, change: Change) -> bytes | None:
    remove, add = change(iptc.keywords(block) if block is not None else [])
    return iptc.edit_keywords(block, remove, add) if remove or add else None


def _photoshop_resources(irb: bytes | None, change: Change) -> bytes | None:
    block = iptc.iptc_in_resources(irb) if irb is not None else None
    remove, add = change(iptc.keywords(block) if block is not None else [])
    return iptc.edit_keywords_in_resources(irb or b"", remove, add) if remove or add else None


def _xp_entry(ifd: tiff.Ifd0, change: Change) -> tuple[int, bytes] | None:
    have = tiff.xp_keywords(ifd)
    remove, add = change(have)
    if not remove and not add:
        return None
    return tiff.xp_value([word for word in have if word not in remove] + add)


def _exif_block(block: bytes | None, change: Change) -> bytes | None:
    entry = _xp_entry(tiff.Ifd0(block if block is not None else EMPTY_TIFF), change)
    return _relocated(block if block is not None else EMPTY_TIFF, {tiff.XP_KEYWORDS: entry}) if entry else None


def _relocated(block: bytes, changes: dict[int, tuple[int, bytes]],
               move: Callable[[int], int] | None = None) -> bytes:
    """``block`` with ``changes`` in a relocated IFD0 (:meth:`tiff.Ifd0.with_entries`), every offset past its
    old end turned by ``move``: by default moved by what the block grew, so that it still points past the end
    rather than into the new IFD0."""
    tiff.check_room_at_end(block)
    grown = tiff.Ifd0(block).with_entries(changes)
    moved = tiff.with_pointers(block, move or (lambda target: target + len(grown) - len(block)))
    return grown if moved == block else tiff.Ifd0(moved).with_entries(changes)


def _finish(edited: bytes, notes: list[str], fields: int = 3) -> tuple[bytes, list[str]]:
    """The edited bytes and notes; refused outright if no field could be written."""
    if len(notes) == fields:
        raise WriteError("; ".join(notes))
    return edited, notes


# JPEG ---------------------------------------------------------------------------------------------

def _jpeg_segments(data: bytes) -> tuple[list[bytes], int]:
    """The segments between SOI and the first scan (fill bytes kept as their own items), and where the scan starts."""
    segments: list[bytes] = []
    i = 2
    while i + 2 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == SOS:
            return segments, i
        if marker == 0xFF:
            segments.append(b"\xff")
            i += 1
            continue
        if marker == EOI or 0xD0 <= marker <= 0xD8 or marker == 0x01 or i + 4 > len(data):
            break
        end = i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
        if end > len(data):
            break
        segments.append(data[i:end])
        i = end
    raise WriteError("not a well-formed JPEG (its metadata segments do not lead to image data)")


def _segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError(f"it would make a {len(payload) + 2:,}-byte segment; a JPEG segment holds at most 65,535")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg(data: bytes, change: Change) -> tuple[bytes, list[str]]:
    segments, scan = _jpeg_segments(data)

    def segments_with(marker: int, ident: bytes) -> list[int]:
        return [i for i, s in enumerate(segments) if len(s) > 4 and s[1] == marker and s[4:].startswith(ident)]

    def payload(found: list[int], ident: bytes) -> bytes | None:
        return segments[found[0]][4 + len(ident):] if found else None

    exif, packet = segments_with(APP1, EXIF_ID), segments_with(APP1, XMP_ID)
    photoshop = segments_with(APP13, PHOTOSHOP_ID)
    notes = _Notes()
    edits: list[tuple[list[int], bytes | None]] = []
    for found, field, name, marker, ident, edit in (
            (exif, "EXIF", "EXIF XPKeywords", APP1, EXIF_ID, _exif_block),
            (packet, "XMP", "XMP dc:subject", APP1, XMP_ID, _xmp_packet),
            (photoshop, "IPTC", "IPTC Keywords", APP13, PHOTOSHOP_ID, _photoshop_resources)):
        if len(found) > 1:  # read as one block by exiftool and others: editing a part would change the whole
            notes.append(f"{name} not written: its {field} spans several segments")
            edits.append((found, None))
            continue
        def edited_segment(found: list[int] = found, ident: bytes = ident, marker: int = marker,
                           edit: Callable[[bytes | None, Change], bytes | None] = edit) -> bytes | None:
            return _maybe(edit(payload(found, ident), change), lambda body: _segment(marker, ident + body))

        edits.append((found, notes.attempt(name, edited_segment)))
    # A new EXIF goes after JFIF's APP0; new XMP and IPTC after the existing APP0/APP1 segments, so that
    # no segment before an existing EXIF grows (exiftool and others report its offsets from the file's start).
    app01 = [i for i, s in enumerate(segments) if len(s) > 1 and s[1] in (APP0, APP1)]
    after_app0 = next((i for i, s in enumerate(segments) if s[1:2] != bytes((APP0,))), len(segments))
    after_app01 = app01[-1] + 1 if app01 else 0
    inserts: dict[int, list[bytes]] = {}
    new = list(segments)
    for (found, edited), at in zip(edits, (after_app0, after_app01, after_app01), strict=True):
        if edited is None:
            continue
        if found:
            new[found[0]] = edited
        else:
            inserts.setdefault(at, []).append(edited)
    placed: list[tuple[int | None, bytes]] = []  # (index in segments, or None for an added one; the segment)
    for i, segment in enumerate(new):
        placed += [(None, piece) for piece in inserts.get(i, [])] + [(i, segment)]
    placed += [(None, piece) for piece in inserts.get(len(segments), [])]
    origin, new = [i for i, _ in placed], [segment for _, segment in placed]
    _keep_mpf_true(segments, new)
    if len(exif) == 1:
        _follow_moved_bytes(segments, new, origin, exif[0])
    return _finish(data[:2] + b"".join(new) + data[scan:], notes)


def _follow_moved_bytes(old: list[bytes], new: list[bytes], origin: list[int | None], at: int) -> None:
    """Turn each offset of the EXIF segment ``old[at]`` that points past its own block (into a later segment,
    the image data or a trailer, as Sony's preview image) to where those bytes now are in ``new``.

    ``origin[j]`` is the index in ``old`` of ``new[j]``, None for an added segment.
    """
    def starts(segments: list[bytes]) -> list[int]:
        positions = [2]
        for segment in segments:
            positions.append(positions[-1] + len(segment))
        return positions

    old_at, new_at = starts(old), starts(new)
    where = {i: j for j, i in enumerate(origin) if i is not None}
    header = len(EXIF_ID) + 4
    old_base, new_base = old_at[at] + header, new_at[where[at]] + header

    def move(target: int) -> int:
        position = old_base + target
        if position >= old_at[-1]:  # in the image data or past it: moved by what the header grew
            return position + new_at[-1] - old_at[-1] - new_base
        k = max(i for i in range(len(old)) if old_at[i] <= position)
        return new_at[where[k]] + position - old_at[k] - new_base

    block = old[at][header:]
    try:
        if not any(p.target >= len(block) for p in tiff.pointers(block)):
            return
        edited = new[where[at]][header:]
        keywords = tiff.Ifd0(edited).value(tiff.XP_KEYWORDS) if edited != block else None
        changes = {tiff.XP_KEYWORDS: keywords} if keywords is not None else {}
        moved = _relocated(block, changes, move) if changes else tiff.with_pointers(block, move)
    except tiff.TiffError:  # offsets no reader can follow already; left as they were
        return
    new[where[at]] = new[where[at]][:header] + moved


def _keep_mpf_true(old: list[bytes], new: list[bytes]) -> None:
    """An MPO (several images in one JPEG) indexes them in its APP2 MPF segment: the first image by its
    length, the later ones by their offset from that segment. Grow and move them as the header did."""
    mpf = next((s for s in old if len(s) > 8 and s[1] == APP2 and s[4:8] == MPF_ID), None)
    if mpf is None:
        return
    at_old, at_new = old.index(mpf), new.index(mpf)
    growth = sum(map(len, new)) - sum(map(len, old))
    shift = sum(map(len, new[at_new + 1:])) - sum(map(len, old[at_old + 1:]))
    if growth:
        try:
            new[at_new] = mpf[:8] + tiff.moved_mp_index(mpf[8:], growth, shift)
        except tiff.TiffError:  # an index no reader can follow already; left as it was
            pass


def _maybe(value: T | None, wrap: Callable[[T], U]) -> U | None:
    return None if value is None else wrap(value)


# TIFF ---------------------------------------------------------------------------------------------

def _tiff(data: bytes, change: Change) -> tuple[bytes, list[str]]:
    try:
        ifd = tiff.Ifd0(data)
    except tiff.TiffError as exc:
        raise WriteError(str(exc)) from None
    notes = _Notes()
    changes: dict[int, tuple[int, bytes]] = {}
    found = ifd.value(tiff.XMP)
    packet = notes.attempt("XMP dc:subject", lambda: _xmp_packet(found[1] if found else None, change))
    if packet:
        changes[tiff.XMP] = (found[0] if found else tiff.BYTE, packet)
    changes.update(notes.attempt("IPTC Keywords", lambda: _tiff_iptc(ifd, change)) or {})
    entry = notes.attempt("EXIF XPKeywords", lambda: _xp_entry(ifd, change))
    if entry:
        changes[tiff.XP_KEYWORDS] = entry
    try:
        return _finish(_relocated(data, changes) if changes else data, notes)
    except tiff.TiffError as exc:
        raise WriteError(str(exc)) from None


def _tiff_iptc(ifd: tiff.Ifd0, change: Change) -> dict[int, tuple[int, bytes]]:
    """IFD0 changes for the IPTC keywords: the IPTC tag (33723) and the digest among the Photoshop resources."""
    old, resources = ifd.value(tiff.IPTC), ifd.value(tiff.PHOTOSHOP)
    if old is None and resources and iptc.iptc_in_resources(resources[1]) is not None:
        # IPTC kept only among the Photoshop resources: extend it there rather than start a second block.
        edited = _photoshop_resources(resources[1], change)
        return {tiff.PHOTOSHOP: (resources[0], edited)} if edited else {}
    block = _iptc_block(old[1].rstrip(b"\x00") if old else None, change)
    if not block:
        return {}
    kind = old[0] if old else tiff.LONG  # as Photoshop and ExifTool write it; exiftool warns of UNDEFINED
    if kind == tiff.LONG:  # Photoshop stores the block as LONGs: pad to whole ones
        block += b"\x00" * (-len(block) % 4)
    changes = {tiff.IPTC: (kind, block)}
    if resources:
        current = iptc.with_digest(resources[1], old[1] if old else None, block)
        if current != resources[1]:
            changes[tiff.PHOTOSHOP] = (resources[0], current)
    return changes


# PNG ----------------------------------------------------------------------------------------------

def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """``(type, start, end)`` of each chunk."""
    chunks, i = [], len(PNG_SIGNATURE)
    while i < len(data):
        if i + 12 > len(data):
            raise WriteError("PNG cut short")
        length = struct.unpack(">I", data[i:i + 4])[0]
        end = i + 12 + length
        if end > len(data):
            raise WriteError("PNG chunk runs past the end of the file")
        chunks.append((data[i + 4:i + 8], i, end))
        i = end
    return chunks


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_xmp(body: bytes | None, change: Change) -> bytes | None:
    """A new ``iTXt`` body for the XMP packet in ``body``, or None if it stays as it is.

    A compressed packet is decompressed, edited and compressed again: its
    text is what readers see, and only the keywords in it change.
    """
    if body is None:
        packet = _xmp_packet(None, change)
        return None if packet is None else PNG_XMP_KEY + b"\x00\x00\x00\x00\x00" + packet
    compressed = body[len(PNG_XMP_KEY) + 1] == 1
    head_end = body.index(b"\x00", body.index(b"\x00", len(PNG_XMP_KEY) + 3) + 1) + 1
    try:
        packet = zlib.decompress(body[head_end:]) if compressed else body[head_end:]
    except zlib.error as exc:
        raise ValueError(f"its compressed iTXt chunk is unreadable ({exc})") from None
    edited = _xmp_packet(packet, change)
    if edited is None:
        return None
    return body[:head_end] + (zlib.compress(edited) if compressed else edited)


def _png(data: bytes, change: Change) -> tuple[bytes, list[str]]:
    chunks = _png_chunks(data)

    def body(chunk: tuple[bytes, int, int] | None) -> bytes | None:
        return data[chunk[1] + 8:chunk[2] - 4] if chunk else None

    packet = next((c for c in chunks if c[0] == b"iTXt" and (body(c) or b"").startswith(PNG_XMP_KEY + b"\x00")), None)
    exif = next((c for c in chunks if c[0] == b"eXIf"), None)
    notes = _Notes()
    edits = [(packet, b"iTXt", notes.attempt("XMP dc:subject", lambda: _png_xmp(body(packet), change))),
             (exif, b"eXIf", notes.attempt("EXIF XPKeywords", lambda: _exif_block(body(exif), change)))]
    replaced = {found[1]: _png_chunk(kind, new) for found, kind, new in edits if new is not None and found}
    added_chunks = [_png_chunk(kind, new) for found, kind, new in edits if new is not None and not found]
    out, placed = [PNG_SIGNATURE], False
    for kind, start, end in chunks:
        if kind == b"IDAT" and not placed:  # new chunks go before the image data, as eXIf must
            out += added_chunks
            placed = True
        out.append(replaced.get(start, data[start:end]))
    return _finish(b"".join(out), notes, fields=2)
