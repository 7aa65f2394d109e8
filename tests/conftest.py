import io
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"
ISS = FIXTURES / "iss"
HIRISE = FIXTURES / "hirise"
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "photos"
DEFAULT_MODEL = ROOT / "models" / "terc-iss"


def downgrade_state(output: Path, version: int) -> None:
    """Make OUTPUT's state what terc-tag left at schema ``version`` (0: terc-tag 0.1, which set none)."""
    from tagger.state import _ADDED_IN, SCHEMA_VERSION

    db = sqlite3.connect(Path(output) / ".terc-tag" / "state.sqlite")
    with db:
        for added in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
            for column in _ADDED_IN[added]:
                db.execute(f"ALTER TABLE photos DROP COLUMN {column.split()[0]}")
        db.execute(f"PRAGMA user_version = {version}")
    db.close()


@pytest.fixture
def iss_photos(tmp_path) -> Path:
    """A fresh copy of six real, TERC-tagged ISS photos (from the default model's test split)."""
    folder = tmp_path / "incoming"
    shutil.copytree(ISS, folder)
    return folder


@pytest.fixture(scope="session")
def session():
    from tagger.model import TaggerSession

    return TaggerSession(DEFAULT_MODEL)


def _exiftool_command() -> str:
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed (Debian: libimage-exiftool-perl)")
    return "exiftool"


def exiftool(*files) -> list[dict]:
    """The independent reader: exiftool's JSON for the given files."""
    out = subprocess.run([_exiftool_command(), "-j", "-G1", *map(str, files)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def exiftool_write(*args) -> None:
    """Change a file the way other tools would (a hand-made tag, say)."""
    subprocess.run([_exiftool_command(), "-q", "-overwrite_original", *map(str, args)], check=True)


def jpeg_scan_offset(data: bytes) -> int:
    """Where the main image's compressed pixels start: walk the segments to the first SOS."""
    position = 2
    while data[position + 1] != 0xDA:
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return position


def as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def jpeg_bytes(array: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", **save)
    return buffer.getvalue()
