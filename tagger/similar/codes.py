"""Similarity codes: fit the map from a model's features to binary codes, and measure how well they retrieve.

A code is the sign of one linear layer on the model's standardized
features (the same features the tag head reads), so it comes out of the
forward pass that tags a photo.  The layer is fit in one of two ways:

* **learned** (photos with tags): the codes' inner products are fit to a
  target per pair of photos: the tag Jaccard similarity (scaled to -0.5..0.5),
  and 0.9, nearest of all, for frames of the same sequence (a burst, a
  near-duplicate), so the code keeps the scene and not only the tags.  Terms
  for quantization (outputs near +-1), bit balance and decorrelated bits, as
  in the MIRS-style hashing literature.  In grouped cross-validation on the ISS
  photos this beat PCA-ITQ, the tag decisions and mixtures of the two
  (``benchmarks/codes_cv.py``).
* **pca-itq** (no tags): Gong and Lazebnik's iterative quantization of the
  top principal components, the unsupervised fallback for a plain folder.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tagger import __version__
from tagger.errors import TercTagError
from tagger.hamming import CodeIndex, pack
from tagger.outputs import atomic_write
from tagger.splits import sequence_groups

if TYPE_CHECKING:
    from tagger.bundle import Bundle
    from tagger.model import TaggerSession

BITS = 64
#: Frames of one sequence: same name prefix, frame numbers at most this far apart.
SCENE_GAP = 20


class CodesError(TercTagError, ValueError):
    """Too few photos or features to fit a code map; the message says how many it needs."""


def scene_ids(names: Iterable[object]) -> np.ndarray:
    """An integer per photo, equal for frames of one sequence (``tagger.splits.sequence_groups``)."""
    groups = sequence_groups([str(n) for n in names], SCENE_GAP)
    return np.unique([groups[str(n)] for n in names], return_inverse=True)[1]


def fit_itq(z: np.ndarray, bits: int = BITS, iterations: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """PCA-ITQ as a linear layer: kernel ``(features, bits)`` and bias ``(bits,)``."""
    z = np.asarray(z, dtype=np.float64)
    if len(z) < bits or z.shape[1] < bits:
        raise CodesError(f"{bits}-bit PCA-ITQ codes need at least {bits} photos and features to fit, "
                         f"not {len(z)} photos of {z.shape[1]} features")
    mean = z.mean(axis=0)
    projection = np.linalg.svd(z - mean, full_matrices=False)[2][:bits].T
    v = (z - mean) @ projection
    rotation = np.linalg.qr(np.random.default_rng(seed).normal(size=(bits, bits)))[0]
    for _ in range(iterations):
        u, _, vt = np.linalg.svd(np.sign(v @ rotation).T @ v)
        rotation = (u @ vt).T
    kernel = projection @ rotation
    return kernel.astype(np.float32), (-mean @ kernel).astype(np.float32)


def fit_learned(z: np.ndarray, y: np.ndarray, scenes: np.ndarray, bits: int = BITS, steps: int = 400,
                batch: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The supervised map (see the module docstring), by Adam on batches of whole scenes."""
    from tagger._tf import tf

    z, y = np.asarray(z, np.float32), np.asarray(y, np.float32)
    rng = np.random.default_rng(seed)
    kernel = tf.Variable(rng.normal(0, z.shape[1] ** -0.5, (z.shape[1], bits)).astype("float32"))
    bias = tf.Variable(np.zeros(bits, "float32"))
    optimizer = tf.keras.optimizers.Adam(0.01)
    by_scene = [np.flatnonzero(scenes == s) for s in np.unique(scenes)]

    @tf.function(input_signature=[tf.TensorSpec((None, z.shape[1]), tf.float32),
                                  tf.TensorSpec((None, None), tf.float32)])  # batches of whole scenes vary in size
    def step(x: Any, target: Any) -> Any:
        with tf.GradientTape() as tape:
            u = tf.tanh(x @ kernel + bias)
            n = tf.cast(tf.shape(x)[0], tf.float32)
            loss = (tf.reduce_mean((u @ tf.transpose(u) / bits - target) ** 2)
                    + 0.1 * tf.reduce_mean((tf.abs(u) - 1) ** 2)  # quantization
                    + tf.reduce_mean(tf.reduce_mean(u, 0) ** 2)  # each bit balanced
                    + tf.reduce_mean((tf.transpose(u) @ u / n - tf.eye(bits)) ** 2)  # decorrelated
                    + 1e-4 * tf.reduce_mean(kernel ** 2))
        optimizer.apply_gradients(zip(tape.gradient(loss, [kernel, bias]), [kernel, bias], strict=True))

    for _ in range(steps):
        rows = _scene_batch(by_scene, batch, rng)
        step(tf.constant(z[rows]), tf.constant(pair_targets(y[rows], scenes[rows])))
    return kernel.numpy(), bias.numpy()


def _scene_batch(by_scene: list[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """Whole scenes in random order until ``size`` rows: frames of a burst meet in the same batch."""
    rows, total = [], 0
    for s in rng.permutation(len(by_scene)):
        rows.append(by_scene[s])
        total += len(by_scene[s])
        if total >= size:
            break
    return np.concatenate(rows)


def pair_targets(y: np.ndarray, scenes: np.ndarray) -> np.ndarray:
    """What the inner product of two codes (over the bit count) should be, for every pair."""
    inter = y @ y.T
    union = y.sum(1)[:, None] + y.sum(1)[None, :] - inter
    jaccard = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return np.where(scenes[:, None] == scenes[None, :], 0.9, jaccard - 0.5).astype(np.float32)


def fit_code_map(z: np.ndarray, y: np.ndarray | None, names: Sequence[object], bits: int = BITS,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Kernel, bias and the method's name: learned when ``y`` has tags, else PCA-ITQ."""
    if bits <= 0 or bits % 64:
        raise ValueError(f"codes must have a positive multiple of 64 bits, not {bits}")
    if y is not None and np.asarray(y).any():
        return (*fit_learned(z, y, scene_ids(names), bits, seed=seed), "learned")
    return (*fit_itq(z, bits, seed=seed), "pca-itq")


def encode(z: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Packed codes (``tagger.hamming.pack``) of standardized features, as the model's code layer gives."""
    return pack(np.asarray(z, np.float32) @ kernel + bias > 0)


def retrieval_metrics(words: np.ndarray, y: np.ndarray | None = None, names: Sequence[object] | None = None,
                      depth: int = 64) -> dict:
    """How well the codes of a set of photos find each other, each photo querying all the others.

    * ``map_at_64``: mean average precision over the 64 nearest, a result
      relevant when it shares a tag with the query (needs ``y``);
    * ``precision_at_10``: the share of the 10 nearest that share a tag;
    * ``chance_precision``: the share of all other photos that share a tag,
      what a random order scores;
    * ``same_sequence_at_5``: of the photos with another frame of their
      sequence among the set (needs ``names``), the share with one among the
      5 nearest.
    """
    index, n = CodeIndex(words), len(words)
    aps, p10, chance, hits, with_mate = [], [], [], 0, 0
    y = None if y is None else np.asarray(y, bool)
    scenes = scene_ids(names) if names is not None else None
    for q in range(n):
        order, _ = index.nearest(index.words[q], min(depth, n - 1), exclude=q)
        if y is not None and y[q].any():
            found = (y[order] & y[q]).any(axis=1)
            precision = np.cumsum(found) / np.arange(1, len(found) + 1)
            aps.append(float((precision * found).sum() / found.sum()) if found.any() else 0.0)
            p10.append(float(found[:10].mean()) if len(found) else 0.0)
            chance.append(float(((y & y[q]).any(axis=1).sum() - 1) / (n - 1)))
        if scenes is not None and (scenes == scenes[q]).sum() > 1:
            with_mate += 1
            hits += bool((scenes[order[:5]] == scenes[q]).any())
    metrics = {"photos": n, "bits": index.bits}
    if aps:
        metrics.update(map_at_64=round(float(np.mean(aps)), 4), precision_at_10=round(float(np.mean(p10)), 4),
                       chance_precision=round(float(np.mean(chance)), 4))
    if with_mate:
        metrics.update(same_sequence_at_5=round(hits / with_mate, 4), queries_with_sequence_mate=with_mate)
    return metrics


def fit_for_session(session: TaggerSession, fit: tuple, test: tuple | None, *, bits: int = BITS,
                    views: Sequence[Callable[[np.ndarray], np.ndarray]] = (lambda a: a,), seed: int = 0,
                    log: Callable[[str], object] = print) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit a code map on a session's features; kernel, bias and the code map's card.

    ``fit`` and ``test`` are ``(pixels, labels or None, names)``; the map is
    fit on ``views`` of the ``fit`` photos and measured on the ``test``
    photos, each querying the others.
    """
    pixels, y, names = fit
    z = np.concatenate([session.features(np.stack([view(a) for a in pixels])) for view in views])
    labels = None if y is None else np.tile(y, (len(views), 1))
    log(f"fitting {bits}-bit codes on {len(pixels)} photos x {len(views)} views")
    kernel, bias, method = fit_code_map(z, labels, list(names) * len(views), bits, seed)
    card: dict[str, Any] = {
        "format": "terc-tag code map, version 1",
        "bits": bits,
        "method": method,
        "layer": "codes: dense layer on the model's standardized features; a bit is set where its unit is > 0",
        "fit_on": {"photos": len(pixels), "views": len(views), "labelled": method == "learned"},
        "tool_version": __version__,
    }
    if test is not None and len(test[0]) > 1:
        words = encode(session.features(test[0]), kernel, bias)
        card["metrics"] = {"test": retrieval_metrics(words, test[1], test[2])}
        log(f"codes on the {len(test[0])} test photos: {card['metrics']['test']}")
    return kernel, bias, card


def save_code_map(folder: str | os.PathLike, kernel: np.ndarray, bias: np.ndarray, card: dict) -> None:
    """Write ``codes.npz`` and ``codes.json`` into a bundle folder, each atomically."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {"codes/0": kernel.astype(np.float32), "codes/1": bias.astype(np.float32)}
    np.savez_compressed(buffer, **arrays)
    atomic_write(Path(folder) / "codes.npz", buffer.getvalue())
    atomic_write(Path(folder) / "codes.json", json.dumps(card, indent=1).encode())


def fit_codes(bundle: Bundle, root: str | os.PathLike, *, bits: int = BITS, views: int = 2, use_tags: bool = True,
              follow_symlinks: bool = False, seed: int = 0, log: Callable[[str], object] = print) -> dict:
    """Fit and save a code map for ``bundle`` (a ``Bundle``) from the photos of ``root``; return its card.

    With ``use_tags``, the photos carrying a tag of the bundle's vocabulary
    teach the learned map; without any (or ``use_tags`` False), every photo
    feeds PCA-ITQ.  Photos the card lists as its test split stay out of the
    fit and measure the codes; when the card's split does not name these
    photos, a fifth of the sequences is held out instead.  The tag model is
    untouched, so archives tagged with it stay tagged.
    """
    from tagger.discover import discover
    from tagger.labels import labels_from_metadata
    from tagger.model import TaggerSession
    from tagger.photos import VIEWS, read_photos
    from tagger.splits import assign_groups

    session = TaggerSession(bundle.path)  # fitting reads the features with TensorFlow, whatever the backend
    photos = discover(Path(root), follow_symlinks).photos
    labels: dict[str, list[str]] = {str(p): [] for p in photos}
    if use_tags:
        found, unreadable = labels_from_metadata(Path(root), photos, session.vocabulary, follow_symlinks)
        tagged = {str(p): tags for p, tags in found.items() if tags}
        for rel, reason in unreadable:
            log(f"skipping {rel}: {reason}")
        if tagged:
            log(f"{len(tagged)} photos carry a tag of the vocabulary; the codes learn from them")
            labels = tagged
        else:
            log("no photo carries a tag of the vocabulary: unsupervised codes (PCA-ITQ)")
    card_test = session.card.split_photos("test")
    if card_test & set(labels) and set(labels) - card_test:
        test = {n for n in labels if n in card_test}
        log(f"holding out the {len(test)} photos of the model card's test split")
    else:
        groups = {n: str(g) for n, g in zip(labels, scene_ids(list(labels)), strict=True)}
        test = {n for n, part in assign_groups(labels, groups, (0.8, 0.2), seed).items() if part == 1}
        log(f"holding out {len(test)} photos (a fifth of the sequences) to measure the codes")
    if len(labels) - len(test) < 2:
        raise CodesError(f"{root}: {len(labels) - len(test)} photos left to fit codes on; need more photos")
    parts = {}
    for part, members in (("fit", sorted(set(labels) - test)), ("test", sorted(test))):
        names, pixels, _ = read_photos(Path(root), members, session.input_size, log, follow_symlinks)
        y = np.array([[t in labels[n] for t in session.vocabulary] for n in names], np.float32) \
            if any(labels.values()) else None
        parts[part] = (pixels, y, names)
    kernel, bias, card = fit_for_session(session, parts["fit"], parts["test"], bits=bits, views=VIEWS[:views],
                                         seed=seed, log=log)
    card["fit_on"]["folder"] = os.path.relpath(Path(root).resolve(), session.path.resolve())
    save_code_map(session.path, kernel, bias, card)
    return card
