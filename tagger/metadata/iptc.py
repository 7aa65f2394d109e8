"""IPTC ``Keywords`` (IIM dataset 2:25) and the Photoshop resources that carry them.

An IIM block is a flat list of datasets (``0x1C``, record, dataset number,
length, value), so new keywords are datasets inserted after the last
keyword, and removed ones datasets cut out: every other dataset keeps its bytes (no time or character set is
rewritten).  In JPEG (APP13) and TIFF (tag 34377) the block sits in a
Photoshop image resource, beside ``IPTCDigest`` (resource 0x0425), the MD5
of the block with which Adobe's tools decide whether XMP or IPTC is current.
A digest that was current before the write is made current again; a stale
one is left stale, since it records that IPTC changed after XMP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

from tagger.errors import TercTagError

KEYWORDS = (2, 25)
UTF8_MARK = b"\x1b%G"  # dataset 1:90 CodedCharacterSet, ISO 2022 escape for UTF-8
MAX_KEYWORD_BYTES = 64  # IIM 4.2 limit for 2:25
IPTC_RESOURCE, DIGEST_RESOURCE = 0x0404, 0x0425
RESOURCE_SIGNATURES = (b"8BIM", b"MeSa", b"PHUT", b"AgHg", b"DCSR")


class IptcError(TercTagError, ValueError):
    pass


def datasets(block: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """``(record, dataset, start, value_start, end)`` of each dataset; stops at trailing zero padding."""
    i = 0
    while i < len(block):
        if block[i] != 0x1C:
            if not block[i:].strip(b"\x00"):
                return
            raise IptcError(f"IPTC block is malformed at byte {i}")
        if i + 5 > len(block):
            raise IptcError("IPTC block is cut short")
        length, header = int.from_bytes(block[i + 3:i + 5], "big"), 5
        if length & 0x8000:  # extended dataset: the next (length & 0x7FFF) bytes hold the length
            size = length & 0x7FFF
            length, header = int.from_bytes(block[i + 5:i + 5 + size], "big"), 5 + size
        end = i + header + length
        if end > len(block):
            raise IptcError("IPTC dataset runs past the end of its block")
        yield block[i + 1], block[i + 2], i, i + header, end
        i = end


def _is_utf8(block: bytes) -> bool:
    return any((r, d) == (1, 90) and block[v:e] == UTF8_MARK for r, d, _, v, e in datasets(block))


def keywords(block: bytes) -> list[str]:
    encoding = "utf-8" if _is_utf8(block) else "latin-1"
    return [block[v:e].decode(encoding, errors="replace") for r, d, _, v, e in datasets(block) if (r, d) == KEYWORDS]


def _dataset(record: int, number: int, value: bytes) -> bytes:
    return bytes((0x1C, record, number)) + len(value).to_bytes(2, "big") + value


def add_keywords(block: bytes, new: Sequence[str]) -> bytes:
    """``block`` with a 2:25 dataset for each of ``new``, after the last keyword (or where 2:25 belongs)."""
    utf8 = _is_utf8(block)
    values = []
    for word in new:
        if not utf8 and not word.isascii():
            raise IptcError(f"IPTC block declares no UTF-8, and {word!r} is not ASCII")
        value = word.encode("utf-8")
        if len(value) > MAX_KEYWORD_BYTES:
            raise IptcError(f"{word!r} is longer than IPTC's {MAX_KEYWORD_BYTES} bytes for a keyword")
        values.append(_dataset(*KEYWORDS, value))
    position = None
    for record, number, start, _, end in datasets(block):
        if (record, number) <= KEYWORDS:
            position = end
        elif position is None:
            position = start
    if position is None:
        position = len(block.rstrip(b"\x00")) if block.strip(b"\x00") else 0
    return block[:position] + b"".join(values) + block[position:]


def remove_keywords(block: bytes, remove: Sequence[str]) -> bytes:
    """``block`` without the 2:25 datasets holding one of ``remove`` (any case); every other byte kept."""
    gone = {word.casefold() for word in remove}
    encoding = "utf-8" if _is_utf8(block) else "latin-1"
    cuts = [(start, end) for record, number, start, value, end in datasets(block)
            if (record, number) == KEYWORDS and block[value:end].decode(encoding, "replace").casefold() in gone]
    for start, end in reversed(cuts):
        block = block[:start] + block[end:]
    return block


def edit_keywords(block: bytes | None, remove: Sequence[str], add: Sequence[str]) -> bytes:
    """``block`` (None: no IPTC yet) without the ``remove`` keywords and with ``add`` appended."""
    if block is None:
        return new_block(add)
    return add_keywords(remove_keywords(block, remove), add)


def new_block(new: Sequence[str]) -> bytes:
    """An IPTC block holding ``new`` keywords alone (declared UTF-8 only when one is not ASCII)."""
    return add_keywords(b"" if all(word.isascii() for word in new) else _dataset(1, 90, UTF8_MARK), new)


def resources(irb: bytes) -> Iterator[tuple[int, int, int, int]]:
    """``(id, start, data_start, data_end)`` of each Photoshop image resource."""
    i = 0
    while i < len(irb):
        if irb[i:i + 4] not in RESOURCE_SIGNATURES:
            if not irb[i:].strip(b"\x00"):
                return
            raise IptcError(f"Photoshop resources are malformed at byte {i}")
        name = 1 + irb[i + 6]
        size_at = i + 6 + name + (name % 2)
        size = int.from_bytes(irb[size_at:size_at + 4], "big")
        data = size_at + 4
        if data + size > len(irb):
            raise IptcError("a Photoshop resource runs past the end of its block")
        yield int.from_bytes(irb[i + 4:i + 6], "big"), i, data, data + size
        i = data + size + (size % 2)


def _resource(number: int, data: bytes) -> bytes:
    return b"8BIM" + number.to_bytes(2, "big") + b"\x00\x00" + len(data).to_bytes(4, "big") + data + \
        b"\x00" * (len(data) % 2)


def iptc_in_resources(irb: bytes) -> bytes | None:
    return next((irb[d:e] for number, _, d, e in resources(irb) if number == IPTC_RESOURCE), None)


def with_digest(irb: bytes, old_block: bytes | None, block: bytes) -> bytes:
    """``irb`` with its IPTCDigest moved from ``old_block`` to ``block``, if it was current; else as it was."""
    for number, _start, data, end in resources(irb):
        if number == DIGEST_RESOURCE and irb[data:end] == hashlib.md5(old_block or b"").digest():
            return irb[:data] + hashlib.md5(block).digest() + irb[end:]
    return irb


def edit_keywords_in_resources(irb: bytes, remove: Sequence[str], add: Sequence[str]) -> bytes:
    """Photoshop resources with their IPTC keywords edited (the block added if missing), digest kept true.

    Only the IPTC resource's size and data change; every other resource
    (and the IPTC resource's own name) keeps its bytes.
    """
    old = iptc_in_resources(irb)
    block = edit_keywords(old, remove, add)
    stop = 0
    for number, _start, data, end in resources(irb):
        if number == IPTC_RESOURCE:
            edited = (irb[:data - 4] + len(block).to_bytes(4, "big") + block + b"\x00" * (len(block) % 2)
                      + irb[end + (end - data) % 2:])
            break
        stop = end + (end - data) % 2
    else:
        edited = irb[:stop] + _resource(IPTC_RESOURCE, block) + irb[stop:]
    return with_digest(edited, old, block)
