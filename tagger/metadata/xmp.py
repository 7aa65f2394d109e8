"""XMP ``dc:subject``, edited in the packet's own text.

The packet is parsed only to read the keywords and to check the result; the
new ``rdf:li`` items are inserted into the text, so every other byte of the
packet (``rdf:about``, the toolkit name, formatting, padding) stays as it was.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Sequence
from xml.sax.saxutils import escape

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"


class XmpError(ValueError):
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


def add_subject(packet: bytes, new: Sequence[str]) -> bytes:
    """``packet`` with ``new`` keywords appended to ``dc:subject`` (created if missing)."""
    if not new:
        return packet
    before = subject(packet)
    text = packet.decode("utf-8")
    rdf, dc = _prefix(text, RDF), _prefix(text, DC)
    if rdf is None:
        raise XmpError("XMP packet without an RDF namespace")
    items = "".join(f"<{rdf}:li>{escape(word)}</{rdf}:li>" for word in new)
    bag = None  # the subject's container: a Bag, as XMP specifies, or the Seq some exporters write
    if dc is not None:
        bag = re.search(rf"<{dc}:subject\s*>\s*<{rdf}:(Bag|Seq)(\s[^>/]*)?(/>|>.*?</{rdf}:\1\s*>)", text, re.S)
    if bag:
        kind = bag.group(1)
        if bag.group(3) == "/>":
            edited = text[:bag.start(3)] + f">{items}</{rdf}:{kind}>" + text[bag.end(3):]
        else:
            close = text.rindex(f"</{rdf}:{kind}", bag.start(3), bag.end())
            edited = text[:close] + items + text[close:]
    else:
        end = text.rfind(f"</{rdf}:RDF>")
        if end < 0 or (dc is not None and re.search(rf"<{dc}:subject\b", text)):
            raise XmpError("XMP packet with a dc:subject terc-tag cannot extend safely")
        about = re.search(rf'<{rdf}:Description\b[^>]*?\b{rdf}:about\s*=\s*"([^"]*)"', text)
        edited = (text[:end] + f'<{rdf}:Description {rdf}:about="{about.group(1) if about else ""}" '
                  f'xmlns:dc="{DC}"><dc:subject><{rdf}:Bag>{items}</{rdf}:Bag></dc:subject></{rdf}:Description>'
                  + text[end:])
    result = edited.encode("utf-8")
    if subject(result) != before + list(new):
        raise XmpError("XMP dc:subject did not come out as intended")
    return result


def new_packet(words: Sequence[str]) -> bytes:
    """A minimal XMP packet holding ``dc:subject`` alone."""
    items = "".join(f"<rdf:li>{escape(word)}</rdf:li>" for word in words)
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            f'<rdf:RDF xmlns:rdf="{RDF}"><rdf:Description rdf:about="" xmlns:dc="{DC}"><dc:subject><rdf:Bag>'
            f'{items}</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
            ).encode("utf-8")
