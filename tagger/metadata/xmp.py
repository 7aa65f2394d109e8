"""XMP ``dc:subject``, edited in the packet's own text.

The packet is parsed only to read the keywords and to check the result; new
``rdf:li`` items are inserted into the text and removed ones cut out of it,
so every other byte of the packet (``rdf:about``, the toolkit name,
formatting, padding) stays as it was.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from xml.sax.saxutils import escape, unescape

from tagger.errors import TercTagError

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"


class XmpError(TercTagError, ValueError):
    pass


def subject(packet: bytes) -> list[str]:
    """The ``dc:subject`` keywords of an XMP packet, in order."""
    try:
        root = ET.fromstring(packet.decode("utf-8").strip("\x00 \t\r\n"))
    except (UnicodeDecodeError, ET.ParseError) as exc:
        raise XmpError(f"unreadable XMP packet: {exc}") from None
    return [(item.text or "") for node in root.iter(f"{{{DC}}}subject") for item in node.iter(f"{{{RDF}}}li")]


def _prefix(text: str, uri: str) -> str | None:
    found = re.search(r'xmlns:([\w.-]+)\s*=\s*["\']' + re.escape(uri) + r'["\']', text)
    return found.group(1) if found else None


def _container(text: str, rdf: str, dc: str | None) -> re.Match[str] | None:
    """The match of ``dc:subject``'s container: a Bag, as XMP specifies, or the Seq some exporters write."""
    if dc is None:
        return None
    return re.search(rf"<{dc}:subject(?:\s[^>/]*)?>\s*<{rdf}:(Bag|Seq)(\s[^>/]*)?(/>|>.*?</{rdf}:\1\s*>)", text,
                     re.S)


def edit_subject(packet: bytes, remove: Sequence[str], add: Sequence[str]) -> bytes:
    """``packet`` without the ``remove`` keywords (any case) and with ``add`` appended to ``dc:subject``.

    Only the ``rdf:li`` items concerned change; the result is parsed again
    and refused unless its keywords are exactly the ones intended.
    """
    if not remove and not add:
        return packet
    gone = {word.casefold() for word in remove}
    expected = [word for word in subject(packet) if word.casefold() not in gone] + list(add)
    text = packet.decode("utf-8")
    rdf, dc = _prefix(text, RDF), _prefix(text, DC)
    if rdf is None:  # an x:xmpmeta with nothing in it yet
        text, rdf = _with_empty_rdf(text), "rdf"
    if gone:
        bag = _container(text, rdf, dc)
        if bag is None:
            raise XmpError("XMP dc:subject is not a list terc-tag can edit")

        def kept(item: re.Match[str]) -> str:
            return "" if unescape(item.group(2)).casefold() in gone else item.group(0)

        inner = re.sub(rf"<{rdf}:li(\s[^>/]*)?>([^<]*)</{rdf}:li>\s*", kept, text[bag.start(3):bag.end(3)])
        text = text[:bag.start(3)] + inner + text[bag.end(3):]
    if add:
        text = _appended(text, rdf, dc, add)
    result = text.encode("utf-8")
    if subject(result) != expected:
        raise XmpError("XMP dc:subject did not come out as intended")
    return result


def _appended(text: str, rdf: str, dc: str | None, new: Sequence[str]) -> str:
    items = "".join(f"<{rdf}:li>{escape(word)}</{rdf}:li>" for word in new)
    bag = _container(text, rdf, dc)
    if bag:
        kind = bag.group(1)
        if bag.group(3) == "/>":
            return text[:bag.start(3)] + f">{items}</{rdf}:{kind}>" + text[bag.end(3):]
        close = text.rindex(f"</{rdf}:{kind}", bag.start(3), bag.end())
        return text[:close] + items + text[close:]
    if dc is not None:
        empty = re.search(rf"<{dc}:subject(\s[^>/]*)?/>", text)  # an empty property: no list yet
        if empty:
            return (text[:empty.start()] + f"<{dc}:subject{empty.group(1) or ''}><{rdf}:Bag>{items}</{rdf}:Bag>"
                    f"</{dc}:subject>" + text[empty.end():])
        if re.search(rf"<{dc}:subject\b", text):
            raise XmpError("XMP packet with a dc:subject terc-tag cannot extend safely")
    about = re.search(rf'<{rdf}:Description\b[^>]*?\b{rdf}:about\s*=\s*(["\'])(.*?)\1', text, re.S)
    subject_of = escape(unescape(about.group(2)), {'"': "&quot;"}) if about else ""
    description = (f'<{rdf}:Description {rdf}:about="{subject_of}" xmlns:dc="{DC}"><dc:subject><{rdf}:Bag>{items}'
                   f'</{rdf}:Bag></dc:subject></{rdf}:Description>')
    end = text.rfind(f"</{rdf}:RDF>")
    if end >= 0:
        return text[:end] + description + text[end:]
    empty_rdf = re.search(rf"<{rdf}:RDF\b([^>]*?)\s*/>", text)  # a self-closing, empty rdf:RDF (some phones)
    if empty_rdf is None:
        raise XmpError("XMP packet without an rdf:RDF element")
    return (text[:empty_rdf.start()] + f"<{rdf}:RDF{empty_rdf.group(1)}>{description}</{rdf}:RDF>"
            + text[empty_rdf.end():])


def _with_empty_rdf(text: str) -> str:
    """``text`` with an empty ``rdf:RDF`` in its empty ``x:xmpmeta``, for :func:`_appended` to fill."""
    meta = re.search(r"<([\w.-]+):xmpmeta\b([^>]*?)\s*(/>|>\s*</\1:xmpmeta\s*>)", text)
    if meta is None:
        raise XmpError("XMP packet without an RDF namespace")
    return (text[:meta.start()] + f'<{meta.group(1)}:xmpmeta{meta.group(2)}><rdf:RDF xmlns:rdf="{RDF}"/>'
            f"</{meta.group(1)}:xmpmeta>" + text[meta.end():])


def new_packet(words: Sequence[str]) -> bytes:
    """A minimal XMP packet holding ``dc:subject`` alone."""
    items = "".join(f"<rdf:li>{escape(word)}</rdf:li>" for word in words)
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            f'<rdf:RDF xmlns:rdf="{RDF}"><rdf:Description rdf:about="" xmlns:dc="{DC}"><dc:subject><rdf:Bag>'
            f'{items}</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
            ).encode()
