"""What a training run is asked to do: :class:`TrainConfig`, checked once, before any photo is read."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tagger
from tagger.errors import TercTagError
from tagger.similar.codes import BITS


class TrainError(TercTagError):
    """Training cannot start or go on; the message says why, in one line."""


HEADS = ("auto", "sigmoid", "softmax")
POOLINGS = ("gem", "average")


@dataclass
class TrainConfig:
    """Every setting of ``terc-tag train``; see the package docstring for the recipe they steer.

    ``labels``: photo name -> tags (a labels file, folder names); None reads
    the tags from the photos' metadata.  ``head``: ``sigmoid`` (independent
    tags), ``softmax`` (one class per image), or ``auto``: softmax where
    every labelled image has exactly one class.  ``backbone_dir``: keep a
    frozen backbone there, shared by the bundles trained on it, instead of
    inside this bundle.  ``code_bits`` 0: no code map.
    """

    image_dir: str | os.PathLike
    out_dir: str | os.PathLike
    vocabulary: Sequence[str] = tagger.TERC_TAGS
    labels: dict | None = None
    labels_source: str = "labels file"
    weights: str = "imagenet"
    input_size: int = 224
    epochs: int = 30
    batch_size: int = 32
    c_values: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0)
    learning_rates: Sequence[float] = (1e-4,)
    fine_tune_blocks: int = 0
    views: int = 2
    balance: bool = True
    pooling: str = "gem"
    label_sets: bool = True
    refit: bool = True
    sequence_gap: int = 100
    camera: bool = False
    head: str = "auto"
    backbone_dir: str | os.PathLike | None = None
    code_bits: int = BITS
    seed: int = 0
    follow_symlinks: bool = False

    def __post_init__(self) -> None:
        """The one check of the settings; what depends on the photos (their classes) is checked when read."""
        if self.camera and self.fine_tune_blocks:
            raise TrainError("the camera's evidence joins the frozen head only; drop --fine-tune-blocks or --camera")
        if not Path(self.image_dir).is_dir():
            raise TrainError(f"{Path(self.image_dir)} is not a folder")
        if self.head not in HEADS:
            raise TrainError(f"head {self.head!r}: choose {', '.join(HEADS)}")
        if self.pooling not in POOLINGS:
            raise TrainError(f"pooling {self.pooling!r}: choose {', '.join(POOLINGS)}")
        if not 1 <= self.views <= 8:
            raise TrainError(f"views {self.views}: a square photo has 1 to 8 dihedral views")
        if not self.c_values or (self.fine_tune_blocks and not self.learning_rates):
            raise TrainError("the sweep needs at least one C (and one learning rate to fine-tune)")
        if self.code_bits < 0 or self.code_bits % 64:
            raise TrainError(f"codes must have a multiple of 64 bits (0 for none), not {self.code_bits}")
        if min(self.input_size, self.epochs, self.batch_size) < 1 or min(self.fine_tune_blocks, self.sequence_gap) < 0:
            raise TrainError("input size, epochs and batch size must be positive; blocks and sequence gap not negative")

    @property
    def refits(self) -> bool:
        """Whether the head kept is fit again on training + validation photos: not when fine-tuning,
        which stops early on the validation photos."""
        return self.refit and not self.fine_tune_blocks
