"""TIFF structures (a TIFF file, or the EXIF block of a JPEG or PNG): change IFD0 without moving anything else.

Rewriting a TIFF structure in place shifts the bytes after the change, and
every offset that points past it must then be found and fixed, including
those inside maker notes, which no writer fully understands.  So IFD0 is
not edited where it stands: a new copy of it, with the entries added or
replaced, is appended at the end together with their values, and the
header's 4-byte pointer is turned to it.  Every other byte keeps its
position: strips, tiles, sub-IFDs, the next pages, thumbnails and maker
notes stay true; the old IFD0 is left as unused bytes.

What lies past the end of the structure does move, in a JPEG: the new IFD0
takes the place that the next segments held, and the file grows before its
image data.  Yet cameras point there on purpose (Sony's preview image sits
after the main image, found by an offset in the maker note) and damaged files
by accident (a GPS directory starting past the end of the block).  So every
pointer of the standard IFDs and of the maker note that lands past the end
is found (:func:`pointers`) and moved with the bytes it pointed to
(:func:`with_pointers`), as ExifTool does: a valid one still finds its data,
an invalid one still finds what it found before, never the new IFD0.  A
pointer whose value starts inside the structure and runs past its end would
read the new IFD0 whatever is done, so such a block is not edited at all.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from tagger.errors import TercTagError

XMP, IPTC, PHOTOSHOP, XP_KEYWORDS = 700, 33723, 34377, 0x9C9E
EXIF_IFD, GPS_IFD, INTEROP_IFD, MAKER_NOTE = 0x8769, 0x8825, 0xA005, 0x927C
#: Tags whose LONG value is itself an offset (a thumbnail's start), besides the sub-IFD pointers.
OFFSET_TAGS = {0x0201}
BYTE, ASCII, SHORT, LONG, UNDEFINED = 1, 2, 3, 4, 7
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


class TiffError(TercTagError, ValueError):
    pass


class Ifd0:
    """IFD0 of a TIFF structure: its entries as raw 12-byte records, and where it points next."""

    def __init__(self, tiff: bytes) -> None:
        if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
            raise TiffError("not a TIFF structure (or a BigTIFF, which terc-tag does not edit)")
        self.tiff, self.order = tiff, "<" if tiff[:2] == b"II" else ">"
        offset = self._unpack("I", 4)
        count = self._unpack("H", offset)
        if offset + 2 + 12 * count + 4 > len(tiff):
            raise TiffError("IFD0 runs past the end of the TIFF structure")
        self.where = {self._unpack("H", at): at for at in range(offset + 2, offset + 2 + 12 * count, 12)}
        self.entries = {tag: tiff[at:at + 12] for tag, at in self.where.items()}
        if len(self.entries) != count:
            raise TiffError("IFD0 lists a tag twice")
        damaged = [index for index, at in enumerate(self.where.values()) if self._unpack("H", at + 2) not in _SIZES]
        if damaged:  # readers stop or skip at such an entry; a rewritten IFD0 would not read the same
            raise TiffError(f"its IFD0 is damaged (entry {damaged[0]} has no valid type)")
        self.next = tiff[offset + 2 + 12 * count:offset + 6 + 12 * count]
        self._check_chain(offset)

    def _check_chain(self, first: int) -> None:
        """Refuse a chain of IFDs that points back at IFD0: moving IFD0 would change what that loop reads."""
        at, seen = self._unpack("I", first + 2 + 12 * len(self.entries)), set()
        while at and at not in seen and at + 2 <= len(self.tiff):
            if at == first:
                raise TiffError("its chain of images loops back to the first one")
            seen.add(at)
            at = self._unpack("I", at + 2 + 12 * self._unpack("H", at)) if len(seen) < 65536 else 0

    def _unpack(self, kind: str, at: int) -> int:
        try:
            return struct.unpack_from(self.order + kind, self.tiff, at)[0]
        except struct.error:
            raise TiffError("TIFF structure cut short") from None

    def locate(self, tag: int) -> tuple[int, int, int] | None:
        """``(type, start, size)`` of an entry's value, or None."""
        entry = self.entries.get(tag)
        if entry is None:
            return None
        kind, count = struct.unpack(self.order + "HI", entry[2:8])
        size = _SIZES.get(kind, 1) * count
        if size <= 4:
            return kind, self.where[tag] + 8, size
        at = struct.unpack(self.order + "I", entry[8:12])[0]
        if at + size > len(self.tiff):
            raise TiffError(f"tag {tag} points past the end of the TIFF structure")
        return kind, at, size

    def value(self, tag: int) -> tuple[int, bytes] | None:
        """``(type, bytes)`` of an entry, or None."""
        found = self.locate(tag)
        return None if found is None else (found[0], self.tiff[found[1]:found[1] + found[2]])

    def with_entries(self, changes: dict[int, tuple[int, bytes]]) -> bytes:
        """The TIFF structure with ``changes`` (tag -> (type, value bytes)) in a relocated IFD0."""
        base = len(self.tiff) + len(self.tiff) % 2
        entries = dict(self.entries)
        values_at = base + 2 + 12 * len(entries.keys() | changes.keys()) + 4
        values = b""
        for tag, (kind, value) in changes.items():
            if len(value) % _SIZES[kind]:
                raise TiffError(f"tag {tag}: {len(value)} bytes is not a whole number of values")
            head = struct.pack(self.order + "HHI", tag, kind, len(value) // _SIZES[kind])
            if len(value) <= 4:
                entries[tag] = head + value.ljust(4, b"\x00")
            else:
                entries[tag] = head + struct.pack(self.order + "I", values_at + len(values))
                values += value + b"\x00" * (len(value) % 2)
        listed = b"".join(entries[tag] for tag in _in_order(self.entries, changes))
        ifd = struct.pack(self.order + "H", len(entries)) + listed + self.next
        return (self.tiff[:4] + struct.pack(self.order + "I", base) + self.tiff[8:] + b"\x00" * (base - len(self.tiff))
                + ifd + values)


def _in_order(existing: dict[int, bytes], changes: dict[int, tuple[int, bytes]]) -> list[int]:
    """The existing tags in their own order (sorted or not: readers may care), each new one before the first
    greater tag."""
    order = list(existing)
    for tag in sorted(changes.keys() - existing.keys()):
        order.insert(next((i for i, t in enumerate(order) if t > tag), len(order)), tag)
    return order


class Pointer(NamedTuple):
    """An offset stored in a TIFF structure: the 4 bytes at ``field``, read as ``base + value``."""

    field: int
    base: int
    value: int
    size: int  # bytes read from there (a directory: its entries)
    order: str

    @property
    def target(self) -> int:
        return self.base + self.value


#: Maker-note headers: prefix -> (where the IFD starts, whether offsets count from the note rather than the
#: TIFF header).  After ExifTool's MakerNotes.pm; a note not listed is tried as an IFD at its start.
MAKER_NOTES = {
    b"SONY DSC ": (12, False), b"SONY CAM ": (12, False), b"SONY MOBILE": (12, False), b"Panasonic\0": (12, False),
    b"AOC\0": (6, False), b"QVC\0": (6, False), b"OLYMP\0": (8, False), b"Nikon\0\x01": (8, False),
    b"Ricoh": (8, False), b"RICOH": (8, False), b"SIGMA\0": (10, False), b"FOVEON\0": (10, False),
    b"OLYMPUS\0": (12, True), b"OM SYSTEM\0": (16, True), b"PENTAX \0": (10, True), b"Apple iOS\0": (14, True),
}


def pointers(tiff: bytes) -> list[Pointer]:
    """Every offset in IFD0 and the IFDs it leads to (next images, EXIF, GPS, interoperability, maker note).

    Offsets are returned whatever they point to, in the structure or not; a
    structure too damaged to follow yields what could be followed.
    """
    order = "<" if tiff[:2] == b"II" else ">"
    found: list[Pointer] = []
    seen: set[int] = set()

    def unpack(kind: str, at: int, o: str = order) -> int | None:
        return struct.unpack_from(o + kind, tiff, at)[0] if 0 <= at <= len(tiff) - struct.calcsize(kind) else None

    def ifd_size(at: int, o: str) -> int:
        count = unpack("H", at, o)
        return 2 if count is None else 2 + 12 * count

    #: IFDs still to read: (where, what offsets in it count from, byte order, whether it is in the chain of
    #: images, whether it is in a maker note, where the data it may hold ends).
    todo: list[tuple[int, int, str, bool, bool, int]] = []

    def walk(at: int, base: int, o: str, chain: bool, maker_note: bool, end: int) -> None:
        count = unpack("H", at, o)
        if at in seen or count is None or at + 2 + 12 * count > end:
            return
        entries = [(*struct.unpack_from(o + "HHII", tiff, entry), entry)
                   for entry in range(at + 2, at + 2 + 12 * count, 12)]
        if maker_note and not (0 < count <= 1000 and all(kind in _SIZES for _, kind, _, _, _ in entries)):
            return  # not an IFD (a maker note of another form): nothing in it is taken for an offset
        seen.add(at)
        values = {tag: value for tag, _, _, value, _ in entries}
        for tag, kind, n, value, entry in entries:
            size = _SIZES.get(kind, 0) * n
            if size > 4:
                found.append(Pointer(entry + 8, base, value, size, o))
                if tag == MAKER_NOTE and not maker_note:
                    note(base + value, size, o)
            elif (tag in (EXIF_IFD, GPS_IFD, INTEROP_IFD) or kind == 13) and n == 1 and kind in (LONG, 13):
                found.append(Pointer(entry + 8, base, value, ifd_size(base + value, o), o))
                todo.append((base + value, base, o, False, maker_note, end))
            elif tag in OFFSET_TAGS and n == 1 and kind == LONG:  # a thumbnail: its length is the next tag
                found.append(Pointer(entry + 8, base, value, max(1, values.get(tag + 1, 1)), o))
        following = unpack("I", at + 2 + 12 * count, o)
        if chain and following:
            found.append(Pointer(at + 2 + 12 * count, base, following, ifd_size(base + following, o), o))
            todo.append((base + following, base, o, True, False, end))

    def note(start: int, size: int, o: str) -> None:
        head, end = tiff[start:start + 18], min(start + size, len(tiff))
        if head.startswith(b"Nikon\0\x02") and head[10:12] in (b"II", b"MM"):  # a TIFF structure of its own
            inner = "<" if head[10:12] == b"II" else ">"
            first = unpack("I", start + 14, inner)
            if first is not None:
                todo.append((start + 10 + first, start + 10, inner, False, True, end))
            return
        at, own = next((v for prefix, v in MAKER_NOTES.items() if head.startswith(prefix)), (0, False))
        if head.startswith(b"AOC\0") and head[4:6] in (b"II", b"MM"):
            o = "<" if head[4:6] == b"II" else ">"
        todo.append((start + at, start if own else 0, o, False, True, end))

    first = unpack("I", 4)
    if first is not None:
        todo.append((first, 0, order, True, False, len(tiff)))
    while todo:
        walk(*todo.pop())
    return found


def with_pointers(tiff: bytes, move: Callable[[int], int]) -> bytes:
    """``tiff`` with every offset that points past its end turned to ``move(target)`` (a target in the same
    coordinates: from the TIFF header), so that it follows the bytes it pointed to."""
    edited = bytearray(tiff)
    for pointer in pointers(tiff):
        if pointer.target >= len(tiff):
            value = move(pointer.target) - pointer.base
            if not 0 <= value <= 0xFFFFFFFF:
                raise TiffError("an offset past the end of the EXIF block cannot follow its data")
            struct.pack_into(pointer.order + "I", edited, pointer.field, value)
    return bytes(edited)


def check_room_at_end(tiff: bytes) -> None:
    """Refuse a structure with a value that starts inside it and runs past its end: data appended at its
    end would become part of that value."""
    for pointer in pointers(tiff):
        if pointer.target < len(tiff) < pointer.target + pointer.size:
            raise TiffError(f"an offset in it points at {pointer.size:,} bytes that run past its end")


MP_ENTRY = 0xB002  # MPF (multi-picture JPEG): 16 bytes per image; its size at bytes 4-7, its offset at 8-11


def moved_mp_index(mpf: bytes, first_growth: int, shift: int) -> bytes:
    """An MPF index whose first image grew by ``first_growth`` bytes and whose later images moved by ``shift``.

    The first image's entry has offset 0 and the image's own length; every
    later image is found by its offset from the MPF header.
    """
    ifd = Ifd0(mpf)
    found = ifd.locate(MP_ENTRY)
    if found is None:
        return mpf
    _, start, size = found
    entries = bytearray(mpf[start:start + size])
    for at in range(0, size - 15, 16):
        length, offset = struct.unpack_from(ifd.order + "II", entries, at + 4)
        if offset:
            struct.pack_into(ifd.order + "I", entries, at + 8, offset + shift)
        else:
            struct.pack_into(ifd.order + "I", entries, at + 4, length + first_growth)
    return mpf[:start] + bytes(entries) + mpf[start + size:]


def xp_keywords(ifd: Ifd0) -> list[str]:
    """EXIF XPKeywords (Windows' keywords): UTF-16LE, separated by semicolons."""
    found = ifd.value(XP_KEYWORDS)
    if found is None:
        return []
    text = found[1].decode("utf-16-le", errors="replace").rstrip("\x00")
    return text.split(";") if text else []  # an empty entry ("a;;b") is kept, in its place


def xp_value(words: list[str]) -> tuple[int, bytes]:
    return BYTE, ";".join(words).encode("utf-16-le") + b"\x00\x00"
