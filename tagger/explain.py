"""``terc-tag explain``: where in a photo the evidence for a tag lies.

Grad-CAM (Selvaraju et al. 2017) on the backbone layer the model reads
(``feature_layer``): each channel of that feature map is weighted by the mean
gradient of the tag's log-probability over it, and the positive part of the
weighted sum is the heat map.  Computed with the reference TensorFlow model of
the session, whatever backend tags with; it works for every bundle, since it
needs only the feature layer and the tag output.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tagger._tf import keras, tf


@dataclass
class Explanation:
    """One photo's heat maps: tag -> (probability, map of the feature grid in [0, 1])."""

    probabilities: dict[str, float]
    maps: dict[str, np.ndarray]


class Explainer:
    """Heat maps from one session; build it once: splitting the network at the feature layer costs a second."""

    def __init__(self, session):
        self.session = session
        model = session.model
        features = model.get_layer(session.feature_layer).output
        self.backbone = keras.Model(model.inputs[0], features)  # the photo up to the feature map ...
        self.head = keras.Model([features, *model.inputs[1:]], model.outputs[0])  # ... and from there to the tags

    def __call__(self, pixels: np.ndarray, camera: np.ndarray | None = None, tags: list[str] | None = None,
                 threshold: float | None = None) -> Explanation:
        """Heat maps of one photo (``pixels``: the model's input size, uint8) for ``tags``.

        Without ``tags``: the tags the photo gets at ``threshold`` (None: the
        model's default), or its most probable tag when it gets none.
        """
        session = self.session
        extra = []
        if session.camera:
            from tagger.camera import MISSING

            extra.append(tf.constant((MISSING if camera is None else camera)[None].astype(np.float32)))
        feature_map = self.backbone(tf.constant(pixels[None].astype(np.float32)), training=False)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(feature_map)
            probabilities = self.head([feature_map, *extra], training=False)
            per_tag = tf.unstack(tf.math.log(tf.clip_by_value(probabilities[0], 1e-7, 1.0)))  # inside the tape
        p = probabilities[0].numpy()
        if tags is None:
            thresholds = session.thresholds(threshold)
            tags = session.decide(p, thresholds) or [session.vocabulary[int(p.argmax())]]
        maps = {}
        for tag in tags:
            gradient = tape.gradient(per_tag[session.vocabulary.index(tag)], feature_map)[0].numpy()
            weighted = np.maximum((feature_map[0].numpy() * gradient.mean(axis=(0, 1))).sum(axis=-1), 0)
            maps[tag] = weighted / weighted.max() if weighted.max() > 0 else weighted
        del tape
        return Explanation({t: float(v) for t, v in zip(session.vocabulary, p)}, maps)


def overlay(photo: Image.Image, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The photo with the heat map laid over it (inferno colours: bright where the evidence is)."""
    from matplotlib import colormaps

    grid = Image.fromarray((heat * 255).astype(np.uint8)).resize(photo.size, Image.BILINEAR)
    coloured = colormaps["inferno"](np.asarray(grid) / 255.0)[..., :3]
    return Image.fromarray(((1 - alpha) * np.asarray(photo) + alpha * 255 * coloured).astype(np.uint8))


def display_image(data: bytes, longest: int = 512) -> Image.Image:
    """The photo as a person sees it (EXIF orientation applied, RGB), at most ``longest`` pixels wide or high."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (longest, longest))
        shown = ImageOps.exif_transpose(image).convert("RGB")
    shown.thumbnail((longest, longest))
    return shown


def write_explanation(folder: Path, name: str, photo: Image.Image, explanation: Explanation) -> list[Path]:
    """``folder/<name>/<tag>.png`` per tag and ``folder/<name>/sheet.png`` with all of them; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for axis, (title, image) in zip(axes[0], panels):
        axis.imshow(image)
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    figure.suptitle(name, fontsize=11)
    figure.tight_layout()
    figure.savefig(out / "sheet.png", dpi=100)
    plt.close(figure)
    return written + [out / "sheet.png"]
