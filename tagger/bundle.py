"""A model bundle as data: its card, vocabulary and identity, read without TensorFlow.

A bundle is a folder with two files, ``model.json`` (the model card) and
``weights.npz`` (arrays keyed ``"<layer name>/<index>"``).  Bundles whose
backbone stays frozen may share it: the card's ``backbone.weights.shared_file``
names a weights file beside the bundles (``models/backbones/``), checked by
its SHA-256 (``shared_sha256``), and ``weights.npz`` then holds the layers
after it.  Optionally a
code map for finding similar photos: ``codes.json`` (its card: bits, method,
retrieval metrics) and ``codes.npz`` (the layer ``codes/0``, ``codes/1``).
The code map is kept apart so that fitting one (``terc-tag fit-codes``)
leaves the tag model, its ``model_id`` and every archive tagged with it as
they are: tags and codes have identities of their own.  Loading one never
runs code from it: the card is JSON, the weights are read by numpy with
``allow_pickle=False``, and the network is built by terc-tag's own code from
a few fields of the card, never deserialised.  Anything malformed is a
:class:`BundleError` whose message is one line.

Reading a bundle is cheap (no TensorFlow, no OpenVINO), so ``tag`` can decide that
nothing is new before it pays for :func:`tagger.sessions.load_session`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tagger.card import ModelCard
from tagger.errors import TercTagError


class BundleError(TercTagError, ValueError):
    """A folder that is not a usable model bundle; the message says why, in one line.

    Also a ``ValueError``, as it was before :class:`~tagger.errors.TercTagError` existed, for code that catches that.
    """


class Bundle:
    """A model bundle's card and identity; :func:`tagger.sessions.load_session` gives a session that predicts."""

    def __init__(self, path: str | os.PathLike, backend: str = "tf", card: ModelCard | None = None):
        """``card``: a card not yet written (training measures its bundle before writing ``model.json``)."""
        self.path = Path(path)
        self.backend = backend
        card_path, self.weights_path = self.path / "model.json", self.path / "weights.npz"
        if (card is None and not card_path.is_file()) or not self.weights_path.is_file():
            raise BundleError(f"{self.path} is not a model bundle (needs model.json and weights.npz)")
        try:
            card_bytes = card_path.read_bytes() if card is None else card.to_json().encode()
            self.card = ModelCard.from_json(card_bytes) if card is None else card
        except OSError as exc:
            raise BundleError(f"cannot read {card_path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise BundleError(f"{card_path} is not a valid model card: {exc}") from None
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{card_path} is not a valid model card: missing or malformed {exc}") from None
        self.vocabulary: list[str] = list(self.card.vocabulary)
        self.input_size = self.card.input_size
        self.feature_layer = self.card.feature_layer
        #: Whether the model reads the camera's evidence (tagger.camera) beside the pixels.
        self.camera = self.card.camera
        #: One class per image (a softmax head): the top class is the tag, not every tag past its threshold.
        self.single_label = self.card.single_label
        digest = hashlib.sha256(card_bytes)
        _hash_file(digest, self.weights_path)
        self.shared_backbone, shared_digest = self._check_shared_backbone()
        digest.update(shared_digest.encode())
        network = digest.hexdigest()  # the network alone: codes may be searched from any backend
        #: The network's identity (card and weights, not the backend): names what is derived from it.
        self.network_id = network[:16]
        digest.update(backend.encode())
        #: Changes whenever the card, the weights or the backend change; incremental runs key on it.
        self.model_id = digest.hexdigest()[:16]
        self.codes_card, self.codes_id = self._read_code_map(network)

    def _check_shared_backbone(self) -> tuple[Path | None, str]:
        """The shared backbone file the card names and its SHA-256, checked against the card ("" for none)."""
        if self.card.shared_backbone is None:
            return None, ""
        shared, expected = self.card.shared_backbone
        path = self.path / shared
        try:
            digest = file_sha256(path)
        except OSError as exc:
            raise BundleError(f"{self.path} needs its shared backbone {path}: {exc.strerror or exc}") from None
        if digest != expected:
            raise BundleError(f"{path} is not the backbone {self.path} was made with (its SHA-256 differs)")
        return path, digest

    def _read_code_map(self, network: str) -> tuple[dict | None, str | None]:
        """The code map's card and identity (None, None when the bundle has none).

        The identity covers the network and the map, not the backend: a code
        made by OpenVINO in bfloat16 and one made by TensorFlow differ in a
        bit now and then, which a similarity search can bear.
        """
        card_path, arrays = self.path / "codes.json", self.path / "codes.npz"
        if not card_path.exists() and not arrays.exists():
            return None, None
        try:
            card_bytes = card_path.read_bytes()
            card = json.loads(card_bytes)
            if not isinstance(card.get("bits"), int) or card["bits"] <= 0 or card["bits"] % 64:
                raise ValueError("bits must be a positive multiple of 64")
            digest = hashlib.sha256(network.encode() + card_bytes)
            _hash_file(digest, arrays)
        except OSError as exc:
            raise BundleError(f"cannot read the code map of {self.path}: {exc.strerror or exc}") from None
        except (ValueError, AttributeError) as exc:
            raise BundleError(f"{card_path} is not a valid code map card: {exc}") from None
        return card, digest.hexdigest()[:16]

    @property
    def code_bits(self) -> int | None:
        """Bits per similarity code, or None when the bundle has no code map."""
        return self.codes_card["bits"] if self.codes_card else None

    @property
    def size(self) -> tuple[int, int]:
        return (self.input_size, self.input_size)

    @property
    def default_threshold(self) -> float:
        """The card's threshold for a run that names none: 0.5, or 0 (the top class) for a single-label bundle."""
        return self.card.default_threshold

    def thresholds(self, choice: float | str | None = None) -> np.ndarray:
        """Per-tag thresholds: a fixed probability, ``"calibrated"`` from the card, or None for the card's default.

        The default is 0.5 for independent tags, and 0 for a single-label
        bundle: its top class is always written.
        """
        if choice is None:
            choice = self.default_threshold
        if choice == "calibrated":
            calibrated = self.card.calibrated_thresholds
            if not calibrated:
                raise BundleError(f"model {self.path} has no calibrated thresholds in its card")
            return np.array([calibrated[tag] for tag in self.vocabulary], dtype=np.float32)
        return np.full(len(self.vocabulary), float(choice), dtype=np.float32)

    def decide(self, probabilities: np.ndarray | Sequence[float],
               thresholds: np.ndarray | Sequence[float]) -> list[str]:
        """The tags for one image's probabilities: each tag at or past its threshold, or the top class.

        A single-label bundle gives its top class where it reaches its
        threshold, and nothing otherwise.
        """
        return decide(self.vocabulary, self.single_label, probabilities, thresholds)

    def weights(self) -> dict[str, np.ndarray]:
        """Every array of the shared backbone, ``weights.npz`` and ``codes.npz``; pickled data is refused."""
        files = ([self.shared_backbone] if self.shared_backbone else []) + [self.weights_path] + (
            [self.path / "codes.npz"] if self.codes_card else [])
        arrays = {}
        for path in files:
            try:
                with np.load(path, allow_pickle=False) as npz:
                    arrays.update({key: npz[key] for key in npz.files})
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise BundleError(f"{path} is not a valid weights file: {exc}") from None
        return arrays


def decide(vocabulary: Sequence[str], single_label: bool, probabilities: np.ndarray | Sequence[float],
           thresholds: np.ndarray | Sequence[float]) -> list[str]:
    """:meth:`Bundle.decide` as a plain function, for processes that hold no bundle (the write stage)."""
    if single_label:
        top = int(np.argmax(probabilities))
        return [vocabulary[top]] if probabilities[top] >= thresholds[top] else []
    return [tag for tag, p, t in zip(vocabulary, probabilities, thresholds, strict=False) if p >= t]


def bundled_models() -> Path | None:
    """The folder of the models that ship with terc-tag: the source tree's ``models/`` or the installed copy."""
    for base in (Path(__file__).resolve().parents[1], Path(sys.prefix) / "share" / "terc-tag"):
        if (base / "models" / "terc-iss" / "model.json").is_file():
            return base / "models"
    return None


def find_bundle(name_or_path: str | os.PathLike) -> Path:
    """A bundle folder, or the name of a bundled model (``terc-iss``, ``hirise``, ``eurosat``)."""
    path = Path(name_or_path)
    if path.is_dir() or os.sep in str(name_or_path) or "/" in str(name_or_path):
        return path
    home = bundled_models()
    if home and (home / path / "model.json").is_file():
        return home / path
    names = sorted(p.parent.name for p in home.glob("*/model.json")) if home else []
    raise BundleError(f"no model {name_or_path!r}: not a folder, nor a bundled model"
                      + (f" ({', '.join(names)})" if names else ""))


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read in blocks."""
    digest = hashlib.sha256()
    _hash_file(digest, path)
    return digest.hexdigest()


def _hash_file(digest: hashlib._Hash, path: Path) -> None:
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
