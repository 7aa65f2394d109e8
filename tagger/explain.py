"""``terc-tag explain``: where in a photo the evidence for a tag lies.

Grad-CAM (Selvaraju et al. 2017) on the backbone layer the model reads
(``feature_layer``): each channel of that feature map is weighted by the mean
gradient of the tag's log-probability over it, and the positive part of the
weighted sum is the heat map.  Everything after the feature map (pooling,
standardization, camera evidence, the dense head, the label-set marginals or
the softmax) is a few closed-form steps, so :class:`Head` computes them and
their gradient in numpy: the session only has to give the feature map, which
the OpenVINO sessions do without TensorFlow.  The maps are Grad-CAM's own,
not an approximation (``tests/test_explain.py`` checks them against
TensorFlow's gradients); it works for every bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from tagger.card import head_config
from tagger.inference import CAMERA_WEIGHT, GEM_FLOOR, GEM_P, STANDARDIZE_EPSILON

if TYPE_CHECKING:
    from tagger.bundle import Bundle
    from tagger.inference import Session

#: The floor of Grad-CAM's log-probability (below it the gradient is 0, as with TensorFlow's clip).
LOG_FLOOR = 1e-7


@dataclass
class Explanation:
    """One photo's heat maps: tag -> (probability, map of the feature grid in [0, 1])."""

    probabilities: dict[str, float]
    maps: dict[str, np.ndarray]


class Head:
    """The network from the feature map to the tag probabilities, in numpy (float64), with its gradient."""

    def __init__(self, bundle: Bundle, weights: dict[str, np.ndarray]) -> None:
        config = head_config(bundle.card)
        self.gem, self.activation = config["pooling"] == "gem", config["activation"]
        self.sets = None if config["label_sets"] is None else np.asarray(config["label_sets"], np.float64)
        self.mean = np.asarray(weights["standardize/0"], np.float64)
        self.scale = 1 / np.sqrt(np.asarray(weights["standardize/1"], np.float64) + STANDARDIZE_EPSILON)
        self.kernel, self.bias = (np.asarray(weights[f"tags/{i}"], np.float64) for i in (0, 1))
        self.camera: tuple[np.ndarray, ...] | None = None
        if bundle.camera:
            self.camera = tuple(np.asarray(weights[f"camera_standardize/{i}"], np.float64) for i in (0, 1))

    def _evidence(self, camera: np.ndarray) -> np.ndarray:
        """``tagger.model.CameraEvidence``: standardized, a missing value at the mean, weighted."""
        assert self.camera is not None, "only a bundle with camera evidence passes it"
        mean, variance = self.camera
        z = (camera - mean) / np.sqrt(variance + STANDARDIZE_EPSILON)
        fields = len(camera) // 2
        return np.concatenate([z[:fields] * (1 - camera[fields:]), z[fields:]]) * CAMERA_WEIGHT

    def gradcam(self, feature_map: np.ndarray, camera: np.ndarray | None, tags: list[int] | None = None,
                choose: Callable[[np.ndarray], list[int]] | None = None) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Probabilities and a Grad-CAM map per tag index (``choose(p)`` picks the tags when ``tags`` is None)."""
        f = np.asarray(feature_map, np.float64)
        cells = f.shape[0] * f.shape[1]
        if self.gem:
            m = np.maximum(f, GEM_FLOOR)
            pooled = (m ** GEM_P).mean(axis=(0, 1)) ** (1 / GEM_P)
            d_pool = (f > GEM_FLOOR) * m ** (GEM_P - 1) * pooled ** (1 - GEM_P) / cells  # d pooled_c / d f_ijc
        else:
            pooled, d_pool = f.mean(axis=(0, 1)), np.full(f.shape, 1 / cells)
        x = (pooled - self.mean) * self.scale
        if self.camera is not None:
            from tagger.camera import MISSING

            x = np.concatenate([x, self._evidence(np.asarray(MISSING if camera is None else camera, np.float64))])
        z = x @ self.kernel + self.bias
        sigma = 1 / (1 + np.exp(-z))
        if self.sets is not None:
            likelihood = self.sets @ np.log(sigma + 1e-300) + (1 - self.sets) @ np.log(1 - sigma + 1e-300)
            posterior = np.exp(likelihood - likelihood.max())
            posterior /= posterior.sum()
            p = posterior @ self.sets
        elif self.activation == "softmax":
            p = np.exp(z - z.max())
            p /= p.sum()
        else:
            p = sigma
        maps = {}
        if tags is None:
            if choose is None:
                raise ValueError("gradcam needs the tags, or choose to pick them")
            tags = choose(p)
        for k in tags:
            if p[k] < LOG_FLOOR:
                maps[k] = np.zeros(f.shape[:2])
                continue
            if self.sets is not None:  # d p_k / d z_j = sum_t posterior_t (S_tk - p_k)(S_tj - sigma_j)
                d_z = (posterior * (self.sets[:, k] - p[k])) @ (self.sets - sigma) / p[k]
            elif self.activation == "softmax":
                d_z = np.eye(len(p))[k] - p
            else:
                d_z = np.eye(len(p))[k] * (1 - p[k])
            d_pooled = (self.kernel[:len(self.mean)] @ d_z) * self.scale  # d log p_k / d pooled_c
            weights = (d_pool * d_pooled).mean(axis=(0, 1))  # Grad-CAM: the gradient's mean over the map
            weighted = np.maximum((f * weights).sum(axis=-1), 0)
            maps[k] = weighted / weighted.max() if weighted.max() > 0 else weighted
        return p, maps


class Explainer:
    """Heat maps from one session (any backend): its feature map, and :class:`Head` after it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.head = Head(session, session.weights())

    def __call__(self, pixels: np.ndarray, camera: np.ndarray | None = None, tags: list[str] | None = None,
                 threshold: float | None = None) -> Explanation:
        """Heat maps of one photo (``pixels``: the model's input size, uint8) for ``tags``.

        Without ``tags``: the tags the photo gets at ``threshold`` (None: the
        model's default), or its most probable tag when it gets none.
        """
        session = self.session
        vocabulary = session.vocabulary

        def chosen(p: np.ndarray) -> list[int]:
            names = session.decide(p, session.thresholds(threshold)) or [vocabulary[int(p.argmax())]]
            return [vocabulary.index(name) for name in names]

        p, maps = self.head.gradcam(session.feature_map(pixels), camera,
                                    None if tags is None else [vocabulary.index(t) for t in tags], chosen)
        return Explanation({t: float(v) for t, v in zip(vocabulary, p, strict=False)},
                           {vocabulary[k]: heat.astype(np.float32) for k, heat in maps.items()})


def overlay(photo: Image.Image, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The photo with the heat map laid over it (inferno colours: bright where the evidence is)."""
    from matplotlib import colormaps

    grid = Image.fromarray((heat * 255).astype(np.uint8)).resize(photo.size, Image.Resampling.BILINEAR)
    coloured = colormaps["inferno"](np.asarray(grid) / 255.0)[..., :3]
    return Image.fromarray(((1 - alpha) * np.asarray(photo) + alpha * 255 * coloured).astype(np.uint8))


def write_explanation(folder: Path, name: str, photo: Image.Image, explanation: Explanation) -> list[Path]:
    """``folder/<name>/<tag>.png`` per tag and ``folder/<name>/sheet.png`` with all of them; the paths written."""
    from matplotlib.figure import Figure  # not pyplot: no backend to choose, no global figure to close

    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    written = []
    layers = {tag: overlay(photo, heat) for tag, heat in explanation.maps.items()}
    for tag, image in layers.items():
        path = out / (tag.replace("/", "_").replace(" ", "_") + ".png")
        image.save(path)
        written.append(path)
    panels = [("photo", photo)] + [(f"{tag} {explanation.probabilities[tag]:.2f}", image)
                                   for tag, image in layers.items()]
    figure = Figure(figsize=(3.2 * len(panels), 3.6))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, (title, image) in zip(axes[0], panels, strict=True):
        axis.imshow(image)
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    figure.suptitle(name, fontsize=11)
    figure.tight_layout()
    figure.savefig(out / "sheet.png", dpi=100)
    return written + [out / "sheet.png"]
