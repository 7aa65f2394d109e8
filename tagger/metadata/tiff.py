"""TIFF structures (a TIFF file, or the EXIF block of a JPEG or PNG): change IFD0 without moving anything else.

Rewriting a TIFF structure in place shifts the bytes after the change, and
every offset that points past it must then be found and fixed, including
those inside maker notes, which no writer fully understands.  So IFD0 is
not edited where it stands: a new copy of it, with the entries added or
replaced, is appended at the end together with their values, and the
header's 4-byte pointer is turned to it.  Every other byte keeps its
position: strips, tiles, sub-IFDs, the next pages, thumbnails and maker
notes stay true; the old IFD0 is left as unused bytes.
"""

from __future__ import annotations

import struct

XMP, IPTC, PHOTOSHOP, XP_KEYWORDS = 700, 33723, 34377, 0x9C9E
BYTE, ASCII, SHORT, LONG, UNDEFINED = 1, 2, 3, 4, 7
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


class TiffError(ValueError):
    pass


class Ifd0:
    """IFD0 of a TIFF structure: its entries as raw 12-byte records, and where it points next."""

    def __init__(self, tiff: bytes):
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
        ifd = struct.pack(self.order + "H", len(entries)) + b"".join(entries[t] for t in sorted(entries)) + self.next
        return (self.tiff[:4] + struct.pack(self.order + "I", base) + self.tiff[8:] + b"\x00" * (base - len(self.tiff))
                + ifd + values)


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
    return [word for word in text.split(";") if word]


def xp_value(words: list[str]) -> tuple[int, bytes]:
    return BYTE, ";".join(words).encode("utf-16-le") + b"\x00\x00"
