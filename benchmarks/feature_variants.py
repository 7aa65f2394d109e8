"""Would richer features lift the head? Grouped cross-validation of feature variants.

The default head sees one vector per photo: conv4_block6_out, GeM-pooled, at
224 px.  This script asks whether more of the image helps the same head
(class-balanced exact logistic regression, label sets, fit on 80% of the
photos and their mirror images, as ``benchmarks/head_cv.py --views 2``):

* a 2 x 2 grid of GeM-pooled quarters beside the global vector (where in the
  frame things are: a truss at the edge, a window frame in the corners);
* the middle of stage 4 (conv4_block3_out) beside its end;
* a second backbone, the complete ImageNet MobileNetV2, alone and beside it;
* the photo at 448 px, alone and beside 224 px.

Each variant's features are concatenated and standardized as one vector.

    python benchmarks/feature_variants.py ../shared/data/iss-terc/images \\
        --weights ../shared/weights/resnet50_imagenet_msra_conv1-conv4.npz \\
        --mobilenet ../shared/weights/mobilenet_v2_1.0_224_imagenet_notop.weights.h5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from head_cv import cv_cells, fold_assignments, labelled_photos

import tagger
from tagger._tf import keras
from tagger.model import GeMPool, build_model
from tagger.train import VIEWS, initial_weights, read_photos

VIEW_COUNT = 2  # the photo and its mirror image, as `train` fits by default


def gem(maps: np.ndarray) -> np.ndarray:
    """The default model's pooling: (photos, h, w, channels) -> (photos, channels)."""
    return np.asarray(GeMPool(3.0)(maps))


def quarters(maps: np.ndarray) -> np.ndarray:
    h, w = maps.shape[1] // 2, maps.shape[2] // 2
    return np.concatenate([gem(maps[:, i * h:(i + 1) * h, j * w:(j + 1) * w]) for i in (0, 1) for j in (0, 1)], axis=1)


def view_maps(extractor: keras.Model, pixels: np.ndarray, scale) -> list[list[np.ndarray]]:
    """Per view, the extractor's outputs (a list) for every photo."""
    maps = []
    for v in range(VIEW_COUNT):
        out = extractor.predict(scale(np.stack([VIEWS[v](a) for a in pixels]).astype("float32")), batch_size=32,
                                verbose=0)
        maps.append(out if isinstance(out, list) else [out])
    return maps


def resnet_maps(pixels: np.ndarray, weights: str, layers=("conv4_block6_out",)):
    model = build_model(len(tagger.TERC_TAGS), pixels.shape[1])
    initial_weights(model, weights)
    return view_maps(keras.Model(model.input, [model.get_layer(n).output for n in layers]), pixels, lambda a: a)


def mobilenet_maps(pixels: np.ndarray, weights: str):
    """MobileNetV2 expects pixels scaled to [-1, 1] (keras.applications.mobilenet_v2.preprocess_input)."""
    model = keras.applications.MobileNetV2(include_top=False, weights=weights, input_shape=pixels.shape[1:])
    return view_maps(model, pixels, lambda a: a / 127.5 - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path)
    parser.add_argument("--weights", required=True, help="ResNet-50 weights (npz, as for terc-tag train)")
    parser.add_argument("--mobilenet", required=True, help="MobileNetV2 no-top ImageNet weights (.weights.h5)")
    parser.add_argument("--c", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    labels, names, pixels, y, _ = labelled_photos(args.images)
    _, pixels_448, _ = read_photos(args.images, names, 448, print)

    def per_view(pool, maps, index=0):
        return np.stack([pool(m[index]) for m in maps])

    resnet = resnet_maps(pixels, args.weights, ("conv4_block6_out", "conv4_block3_out"))
    mobilenet = mobilenet_maps(pixels, args.mobilenet)
    end, middle = per_view(gem, resnet), per_view(gem, resnet, 1)
    grid, mobile = per_view(quarters, resnet), per_view(gem, mobilenet)
    del resnet, mobilenet
    large = per_view(gem, resnet_maps(pixels_448, args.weights))
    variants = {
        "conv4 end, GeM (default)": end,
        "+ 2 x 2 quarters": np.concatenate([end, grid], -1),
        "+ conv4 middle (block 3)": np.concatenate([end, middle], -1),
        "MobileNetV2 alone": mobile,
        "+ MobileNetV2": np.concatenate([end, mobile], -1),
        "448 px alone": large,
        "+ 448 px": np.concatenate([end, large], -1),
    }
    fold_sets = fold_assignments(labels, names, args.seeds)
    print(f"{len(names)} photos; {args.seeds} x 5 grouped folds, heads fit on 80% and the mirror images")
    print("\n| features | dims | C | macro-F1 | exact match | ISS Structure F1 | Movie F1 | Volcano F1 | "
          "tags >= baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, x in variants.items():
        for c in args.c:
            print(f"| {name} | {x.shape[-1]} | {c:g} | "
                  + cv_cells(x, y, fold_sets, c, True, tags=("ISS Structure", "Movie", "Volcano")), flush=True)


if __name__ == "__main__":
    main()
