"""Training's inputs: the backbone's start, the photos, and their features under dihedral views.

The backbone stays frozen in the frozen phase, so each photo goes through it
once per view and the pooled features are cached; every head of the sweep
is then fit on those numbers.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tagger._tf import keras
from tagger.bundle import file_sha256
from tagger.camera import MISSING as CAMERA_MISSING
from tagger.model import backbone_layers, load_weights, save_weights
from tagger.photos import VIEWS, read_photos  # noqa: F401  (training's inputs, shared with tagger.similar.codes)
from tagger.train.config import TrainError


def initial_weights(model: keras.Model, weights: str) -> dict:
    """Load ``imagenet`` (download), ``none`` or a local file; return provenance."""
    if weights == "none":
        return {"source": "none (random initialisation)", "layers_loaded": 0}
    if weights == "imagenet":
        try:
            reference = keras.applications.ResNet50(include_top=False, weights="imagenet")
        except Exception as exc:  # Keras reports a failed download as a bare Exception
            raise TrainError(f"cannot download the ImageNet weights ({exc}); without internet, copy resnet50_"
                             "weights_tf_dim_ordering_tf_kernels_notop.h5 here and pass --weights FILE") from None
        arrays = {f"{layer.name}/{i}": w for layer in reference.layers for i, w in enumerate(layer.get_weights())}
        return {"source": "imagenet (keras.applications download)", "layers_loaded": len(load_weights(model, arrays))}
    path = Path(weights)
    if not path.is_file():
        raise TrainError(f"--weights {weights}: not 'imagenet', 'none' or an existing file")
    try:
        if path.suffix == ".h5":  # the official Keras file, copied to an air-gapped site
            reference = keras.applications.ResNet50(include_top=False, weights=None)
            reference.load_weights(path)
            arrays = {f"{layer.name}/{i}": w for layer in reference.layers for i, w in enumerate(layer.get_weights())}
        else:
            arrays = dict(np.load(path))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise TrainError(f"--weights {weights}: not a weights file Keras or NumPy can read ({exc})") from None
    loaded = load_weights(model, arrays)
    if not loaded:
        raise TrainError(f"--weights {weights}: no layer names match ResNet-50")
    return {"source": "file", "file": path.name, "sha256": file_sha256(path),
            "layers_loaded": len(loaded)}


def pretrained_feature_layer(weights: str) -> str:
    """The deepest stage the weights cover: stage 5 when present, else stage 4."""
    if weights in ("imagenet", "none") or Path(weights).suffix == ".h5":
        return "conv5_block3_out"
    keys = np.load(weights).files
    return "conv5_block3_out" if any(k.startswith("conv5_") for k in keys) else "conv4_block6_out"


def cache_features(extractor: keras.Model, photos: np.ndarray, views: Sequence[Callable[[np.ndarray], np.ndarray]],
                   batch_size: int, dtype: str) -> np.ndarray:
    """The extractor's outputs for every view of the photos, view after view, in one array of ``dtype``.

    Filled batch by batch, so the peak is the array itself, not a list of
    float32 batches beside their concatenation.
    """
    shape = extractor.output.shape[1:]
    out = np.empty((len(views) * len(photos), *shape), dtype)
    for v, view in enumerate(views):
        for start in range(0, len(photos), batch_size):
            batch = np.stack([view(a) for a in photos[start:start + batch_size]]).astype("float32")
            out[v * len(photos) + start:][:len(batch)] = extractor.predict_on_batch(batch)
    return out


def check_map_memory(extractor: keras.Model, images: int, available: int | None = None) -> None:
    """Fail at once, not when the kernel kills the process, if the fine-tune cache would not fit in memory.

    The cache holds one float16 feature map per image and view; fitting on
    it may copy it once more.  ``available``: bytes (default: the system's
    MemAvailable).
    """
    available = available_memory() if available is None else available
    needed = 2 * images * int(np.prod(extractor.output.shape[1:])) * 2
    if available is not None and needed > available:
        raise TrainError(f"fine-tuning caches {images} feature maps ({needed / 2**30:.1f} GB with the copy made while "
                         f"fitting), more than the {available / 2**30:.1f} GB of memory available: use fewer --views, "
                         "a smaller --input-size or fewer photos")


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes; None where there is none (not Linux)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def block_outputs(model: keras.Model) -> list[str]:
    """The stem's output, then each residual block's, first to last (the model ends at its feature layer)."""
    return ["pool1_pool"] + [layer.name for layer in model.layers
                             if layer.name.startswith("conv") and layer.name.endswith("_out")]


def fine_tune_split(model: keras.Model, blocks: int) -> str:
    """The layer whose outputs fine-tuning caches: ``pool`` for none, else the output before the last ``blocks``.

    Blocks count back from the feature layer across stages; tuning all of
    them caches the stem's output (``pool1_pool``): the stem stays frozen.
    """
    chain = block_outputs(model)
    if blocks >= len(chain):
        raise TrainError(f"--fine-tune-blocks {blocks}: this backbone has {len(chain) - 1} residual blocks")
    return "pool" if blocks == 0 else chain[-1 - blocks]


def tuned_layers(model: keras.Model, split_layer: str) -> set[str]:
    """The backbone layers fine-tuning changes: those of the residual blocks after ``split_layer``."""
    chain = block_outputs(model)
    prefixes = tuple(name[:-len("out")] for name in chain[chain.index(split_layer) + 1:])  # "conv4_block5_", ...
    return {name for name in backbone_layers(model) if name.startswith(prefixes)}


def with_camera(features: np.ndarray, evidence: np.ndarray, views: int) -> tuple[np.ndarray, int]:
    """Each view's features beside its photo's evidence, every second view without it (EXIF dropout).

    ``features`` holds ``views`` blocks of the same photos.  The stripped
    views teach the head photos whose EXIF was stripped, so that they lose
    nothing against a model without the camera input; with a single view, a
    stripped copy of it is added.  Returns the rows and how many blocks they
    hold (to repeat the labels by).
    """
    n = len(evidence)
    blocks = [features[v * n:(v + 1) * n] for v in range(views)] + ([features[:n]] if views == 1 else [])
    rows = [np.concatenate([block, evidence if v % 2 == 0 else np.tile(CAMERA_MISSING, (n, 1))], axis=1)
            for v, block in enumerate(blocks)]
    return np.concatenate(rows), len(rows)


def save_shared_backbone(model: keras.Model, folder: Path, feature_layer: str) -> Path:
    """Keep the model's frozen backbone in ``folder``, once for every bundle trained on it; return its file.

    The file is named by a digest of its weights (not of the file's bytes,
    which carry zip timestamps), so a second bundle on the same backbone
    finds it there and adds nothing.
    """
    layers = backbone_layers(model)
    digest = hashlib.sha256()
    for layer in sorted(layers):
        for w in model.get_layer(layer).get_weights():
            digest.update(w.astype(np.float16 if w.ndim > 1 else np.float32).tobytes())
    path = folder / f"resnet50-{feature_layer.split('_')[0]}-{digest.hexdigest()[:12]}.npz"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        save_weights(model, partial, only=layers)
        os.replace(partial, path)
    return path
