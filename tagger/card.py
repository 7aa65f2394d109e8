"""The model card (``model.json``) as one typed object, read and checked in one place.

:class:`tagger.bundle.Bundle` reads it, training writes it.  The fields a
program acts on (vocabulary, input size, feature layer, inputs, head,
thresholds, the shared backbone) are checked by :meth:`ModelCard.from_json`;
the descriptive sections (preprocessing, training, split, metrics) are kept
as the JSON objects they are.  A field this version does not know is kept
too, in its place, so a card from another version reads and writes back
byte for byte (as ``json.dumps(card, indent=1)`` wrote it) and keeps its
``model_id``, which hashes the file's bytes.

The card is also a read-only mapping of its JSON document
(``card["split"]["test"]``), for the reports that print sections of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

FORMAT = "terc-tag model bundle, version 1"
#: The sections in the order training writes them.
SECTIONS = ("format", "name", "created", "tool_version", "vocabulary", "input_size", "preprocessing", "backbone",
            "inputs", "head", "thresholds", "training", "split", "metrics")


@dataclass(eq=False)
class ModelCard(Mapping[str, Any]):
    """A model card; ``None`` for a section the card does not have (cards written before it existed)."""

    vocabulary: list[str]
    input_size: int
    backbone: dict[str, Any]
    format: str | None = None
    name: str | None = None
    created: str | None = None
    tool_version: str | None = None
    preprocessing: dict[str, Any] | None = None
    #: ``{"rgb": ..., "camera": ...}``; absent in cards written before the camera input (pixels only).
    inputs: dict[str, Any] | None = None
    #: A dict (``pooling``, ``label_sets``, ``activation``), or a plain string in the first cards.
    head: dict[str, Any] | str | None = None
    thresholds: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    split: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    #: Sections this version does not know, kept to be written back.
    extra: dict[str, Any] = field(default_factory=dict)
    #: The sections' order as read, so that a card is written back as it was.
    order: tuple[str, ...] = SECTIONS

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse and check a card; ValueError, KeyError or TypeError say what is wrong."""
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("a model card is a JSON object")
        for required in ("vocabulary", "input_size", "backbone"):
            if required not in document:
                raise KeyError(required)
        known = {f.name for f in fields(cls)} - {"extra", "order"}
        return cls(**{key: value for key, value in document.items() if key in known},
                   extra={key: value for key, value in document.items() if key not in known},
                   order=tuple(document))

    def check(self) -> None:
        """The card's one validation: what building and deciding with the network rely on."""
        vocabulary = self.vocabulary
        if not isinstance(vocabulary, list) or not vocabulary or not all(isinstance(v, str) and v for v in vocabulary):
            raise ValueError("vocabulary must be a non-empty list of tag names")
        if len({v.casefold() for v in vocabulary}) != len(vocabulary):
            raise ValueError("vocabulary names a tag twice")
        self.input_size = int(self.input_size)
        str(self.backbone["feature_layer"])
        if self.inputs is not None and (not isinstance(self.inputs, dict) or not set(self.inputs) <= {"rgb", "camera"}):
            raise ValueError("inputs must name rgb and, optionally, camera")
        if isinstance(self.head, dict) and self.head.get("activation", "sigmoid") not in ("sigmoid", "softmax"):
            raise ValueError(f"unknown head activation {self.head['activation']!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: the sections as read (or as training orders them), then any new ones."""
        present = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "order")}
        present = {key: value for key, value in present.items() if value is not None}
        present.update(self.extra)
        order = list(self.order) + [key for key in SECTIONS + tuple(self.extra) if key not in self.order]
        return {key: present[key] for key in dict.fromkeys(order) if key in present}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    # The mapping view of the JSON document.
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    @property
    def feature_layer(self) -> str:
        return str(self.backbone["feature_layer"])

    @property
    def camera(self) -> bool:
        """Whether the model reads the camera's evidence (tagger.camera) beside the pixels."""
        return self.inputs is not None and "camera" in self.inputs

    @property
    def single_label(self) -> bool:
        """One class per image (a softmax head): the top class is the tag."""
        return isinstance(self.head, dict) and self.head.get("activation") == "softmax"

    @property
    def shared_backbone(self) -> tuple[str, str | None] | None:
        """The shared backbone file the card names (relative to the bundle) and its SHA-256, or None."""
        weights = self.backbone.get("weights") or {}
        if weights.get("shared_file") is None:
            return None
        return str(weights["shared_file"]), weights.get("shared_sha256")

    @property
    def default_threshold(self) -> float:
        """0.5, or 0 (the top class) for a single-label card; what a run that names no threshold uses."""
        return (self.thresholds or {}).get("default", 0.5)

    @property
    def calibrated_thresholds(self) -> dict[str, float] | None:
        return (self.thresholds or {}).get("calibrated")

    def split_photos(self, *names: str) -> set[str]:
        """The names of the photos the card's ``names`` splits held (none for a card without a split)."""
        return {photo for name in names for photo in (self.split or {}).get(name, [])}


def head_config(card: ModelCard | Mapping) -> dict:
    """``pooling``, ``label_sets`` (a 0/1 matrix or None) and ``activation`` from a model card.

    Cards written before these options (``head`` a plain string) mean average
    pooling and independent sigmoid tags.
    """
    head = card.get("head")
    if not isinstance(head, dict):
        return {"pooling": "average", "label_sets": None, "activation": "sigmoid"}
    vocabulary = card["vocabulary"]
    sets = head.get("label_sets")
    activation = head.get("activation", "sigmoid")
    if activation not in ("sigmoid", "softmax"):
        raise ValueError(f"unknown head activation {activation!r}")
    return {"pooling": head["pooling"], "activation": activation,
            "label_sets": None if sets is None else [[tag in combo for tag in vocabulary] for combo in sets]}
