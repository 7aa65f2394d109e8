"""Build a folder of hostile and awkward inputs from real photos."""

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from conftest import ISS
from PIL import Image

#: Files that must fail with a reason (name -> words the reason contains).
BAD = {
    "empty.jpg": "empty",
    "truncated.jpg": "corrupt",
    "text.jpg": "not a readable image",
    "bomb.png": "pixel",
}
#: Photos tagged in some fields, with the field left alone named (name -> words of the note).
PARTLY = {
    "bad-exif.jpg": "EXIF XPKeywords not written",
    "oversized-xmp.jpg": "XMP dc:subject not written",
}
#: Awkward but valid photos: they must be tagged.
VALID_ODD = ["cmyk.jpg", "grey.jpg", "sixteen-bit.tif", "alpha.png", "rotated-6.jpg", "rotated-8.jpg",
             "Über die Erde ☄.jpg", "name with spaces.JPG", *PARTLY]


def bomb_png(width: int = 40000, height: int = 40000) -> bytes:
    """A tiny PNG file that claims width x height pixels."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
            + chunk(b"IEND", b""))


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def with_bad_exif(jpeg: bytes) -> bytes:
    """The photo with an APP1 Exif segment whose IFD offsets point nowhere."""
    garbage = b"Exif\0\0II*\0" + struct.pack("<I", 0xFFFFFF00) + os.urandom(64)
    segment = b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage
    return jpeg[:2] + segment + jpeg[2:]


def with_oversized_xmp(jpeg: bytes) -> bytes:
    """The photo with an extra XMP segment of nearly 64 KB, the most a JPEG segment can hold."""
    packet = ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
              '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
              'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
              + "y" * 65000 + '</rdf:li></rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>'
              '<?xpacket end="w"?>').encode()
    body = b"http://ns.adobe.com/xap/1.0/\0" + packet
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def build(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    source = (ISS / "iss038e040838.jpg").read_bytes()
    photo = Image.open(io.BytesIO(source))
    for path in sorted(ISS.glob("*.jpg")):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(source[: len(source) // 3])
    (folder / "text.jpg").write_text("This is a note, not a photo.\n")
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "cmyk.jpg").write_bytes(_save(photo.convert("CMYK"), "JPEG"))
    (folder / "grey.jpg").write_bytes(_save(photo.convert("L"), "JPEG"))
    sixteen = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    (folder / "sixteen-bit.tif").write_bytes(_save(Image.fromarray(sixteen), "TIFF"))
    rgba = photo.convert("RGBA")
    rgba.putalpha(200)
    (folder / "alpha.png").write_bytes(_save(rgba, "PNG"))
    for orientation, turn in ((6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored = photo.transpose(turn)
        (folder / f"rotated-{orientation}.jpg").write_bytes(_save(stored, "JPEG", exif=exif.tobytes()))
    (folder / "Über die Erde ☄.jpg").write_bytes(source)
    (folder / "name with spaces.JPG").write_bytes(source)
    (folder / "bad-exif.jpg").write_bytes(with_bad_exif(source))
    (folder / "oversized-xmp.jpg").write_bytes(with_oversized_xmp(source))
    os.mkfifo(folder / "pipe.jpg")  # reading it would block forever
    (folder / "readme.txt").write_text("not a photo")
    (folder / "sub").mkdir(exist_ok=True)
    os.symlink("..", folder / "sub" / "loop")
    return folder
