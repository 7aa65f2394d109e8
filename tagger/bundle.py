"""A model bundle as data: its card, vocabulary and identity, read without TensorFlow.

A bundle is a folder with two files, ``model.json`` (the model card) and
``weights.npz`` (arrays keyed ``"<layer name>/<index>"``).  Loading one never
runs code from it: the card is JSON, the weights are read by numpy with
``allow_pickle=False``, and the network is built by terc-tag's own code from
a few fields of the card, never deserialised.  Anything malformed is a
:class:`BundleError` whose message is one line.

Reading a bundle is cheap (no TensorFlow), so ``tag`` can decide that
nothing is new before it pays for :meth:`Bundle.load`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np


class BundleError(ValueError):
    """A folder that is not a usable model bundle; the message says why, in one line."""


class Bundle:
    """A model bundle's card and identity; :meth:`load` gives a session that predicts."""

    def __init__(self, path: str | os.PathLike, backend: str = "tf"):
        self.path = Path(path)
        self.backend = backend
        card_path, self.weights_path = self.path / "model.json", self.path / "weights.npz"
        if not card_path.is_file() or not self.weights_path.is_file():
            raise BundleError(f"{self.path} is not a model bundle (needs model.json and weights.npz)")
        try:
            card_bytes = card_path.read_bytes()
            self.card = json.loads(card_bytes)
            self.vocabulary: list[str] = _strings(self.card["vocabulary"])
            self.input_size = int(self.card["input_size"])
            self.feature_layer = str(self.card["backbone"]["feature_layer"])
        except OSError as exc:
            raise BundleError(f"cannot read {card_path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise BundleError(f"{card_path} is not a valid model card: {exc}") from None
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{card_path} is not a valid model card: missing or malformed {exc}") from None
        digest = hashlib.sha256(card_bytes)
        with open(self.weights_path, "rb") as weights:
            for block in iter(lambda: weights.read(1 << 20), b""):
                digest.update(block)
        digest.update(backend.encode())
        #: Changes whenever the card, the weights or the backend change; incremental runs key on it.
        self.model_id = digest.hexdigest()[:16]

    @property
    def size(self) -> tuple[int, int]:
        return (self.input_size, self.input_size)

    def thresholds(self, choice: float | str = 0.5) -> np.ndarray:
        """Per-tag thresholds: a fixed probability, or ``"calibrated"`` from the card."""
        if choice == "calibrated":
            calibrated = self.card.get("thresholds", {}).get("calibrated")
            if not calibrated:
                raise ValueError(f"model {self.path} has no calibrated thresholds in its card")
            return np.array([calibrated[tag] for tag in self.vocabulary], dtype=np.float32)
        return np.full(len(self.vocabulary), float(choice), dtype=np.float32)

    def weights(self) -> dict[str, np.ndarray]:
        """Every array of ``weights.npz``; an object array (pickled data) is refused, never unpickled."""
        try:
            with np.load(self.weights_path, allow_pickle=False) as arrays:
                return {key: arrays[key] for key in arrays.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise BundleError(f"{self.weights_path} is not a valid weights file: {exc}") from None

    def load(self):
        """A :class:`tagger.model.TaggerSession` for this bundle (imports TensorFlow; seconds)."""
        from tagger.model import TaggerSession

        return TaggerSession(self.path, self.backend)


def _strings(values) -> list[str]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError("vocabulary must be a non-empty list of tag names")
    if len({v.casefold() for v in values}) != len(values):
        raise ValueError("vocabulary names a tag twice")
    return list(values)
