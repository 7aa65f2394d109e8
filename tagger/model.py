"""Stage 3: the model. Building it, loading a bundle, predicting.

A model bundle is a folder with two files:

* ``model.json``: the model card (vocabulary, thresholds, input size,
  preprocessing, backbone and weight provenance, training data, split,
  metrics); see ``tagger.train``.
* ``weights.npz``: every weight as ``"<layer name>/<index>"`` (float16 to
  keep the bundle small), the same layout as the stand-in ImageNet file, so a
  single loader serves both.
* optionally ``codes.json`` and ``codes.npz``: the similarity code map
  (``tagger.similar.codes``), a second output of the same network.

The network is ResNet-50 from ``keras.applications`` cut at
``feature_layer`` (``conv4_block6_out`` when only stages 1-4 are pretrained),
then generalized-mean pooling, standardization, one sigmoid unit per tag and,
optionally, the label-set layer that turns the independent per-tag
probabilities into the marginals of a posterior over the tag combinations seen
in training.  The model card's ``head`` says which (``head_config``).

This module is TensorFlow's side: training builds and saves with it, and the
``tf`` backend predicts with it as the reference.  Tagging with the other
backends builds the same network without TensorFlow (``tagger.inference``).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

import numpy as np

from tagger import backends
from tagger._tf import keras, tf
from tagger.bundle import Bundle, BundleError
from tagger.camera import SIZE as CAMERA_SIZE
from tagger.card import ModelCard, head_config
from tagger.inference import (
    CAMERA_WEIGHT,
    GEM_P,
    IMAGENET_BGR_MEAN,
    STANDARDIZE_EPSILON,
    Forward,
    Session,
)


class CaffePreprocess(keras.layers.Layer):
    """Inside the model, so every caller feeds plain 0..255 RGB pixels."""

    def call(self, rgb: Any) -> Any:
        return rgb[..., ::-1] - keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=rgb.dtype)


class Standardize(keras.layers.Layer):
    """(x - mean) / std with fixed statistics of the training features.

    Pooled ReLU features differ in scale by orders of magnitude; the linear
    head is fitted on standardized features, and this layer repeats that
    (``tagger.train.standardize`` is the same in numpy).
    """

    epsilon = STANDARDIZE_EPSILON

    def build(self, input_shape: Any) -> None:
        self.mean = self.add_weight(shape=(input_shape[-1],), initializer="zeros", trainable=False, name="mean")
        self.variance = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=False, name="variance")

    def call(self, x: Any) -> Any:
        return (x - self.mean) / keras.ops.sqrt(self.variance + self.epsilon)


class CameraEvidence(Standardize):
    """The camera's evidence as the head reads it: standardized, a missing value at the mean, weighted.

    A missing value becomes 0 after standardizing, the mean of the photos
    fit, so only its indicator speaks for it; the whole is multiplied by
    ``CAMERA_WEIGHT``.  ``tagger.train.head_input`` is the same in numpy.
    """

    def call(self, x: Any) -> Any:
        z = super().call(x)
        fields = x.shape[-1] // 2
        present = 1 - x[..., fields:]
        return keras.ops.concatenate([z[..., :fields] * present, z[..., fields:]], axis=-1) * CAMERA_WEIGHT


class GeMPool(keras.layers.Layer):
    """Generalized-mean pooling, (mean of x^p)^(1/p) over the feature map.

    Between average (p=1) and max pooling: a small bright object (the Moon,
    a docking spacecraft) is not averaged away by the dark frame around it.
    On the ISS photos it beat average pooling in grouped cross-validation
    (benchmarks/head_cv.py).
    """

    def __init__(self, p: float = GEM_P, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p = float(p)

    def call(self, x: Any) -> Any:
        return keras.ops.power(keras.ops.mean(keras.ops.power(keras.ops.maximum(x, 1e-6), self.p), axis=(1, 2)),
                               1.0 / self.p)


class LabelSetMarginals(keras.layers.Layer):
    """Per-tag probabilities, made consistent with the tag combinations seen in training.

    Takes the head's logits z.  The independent sigmoids score each
    combination S by their log-likelihood sum_j log p_j^S_j (1-p_j)^(1-S_j),
    written with softplus so that it stays finite in bfloat16; a softmax over
    the combinations gives a posterior, and the output for tag j is the
    posterior mass of the combinations holding j.  So a photo whose tags all
    fall short is rarely left with none, and "Cupola" without "Inside ISS"
    needs strong evidence.  Thresholding stays per tag (>= 0.5 by default).
    """

    def __init__(self, label_sets: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.label_sets = np.asarray(label_sets, dtype="float32")  # (combinations, tags), 0/1

    def call(self, logits: Any) -> Any:
        sets = keras.ops.convert_to_tensor(self.label_sets, dtype=logits.dtype)
        log_p, log_not_p = -keras.ops.softplus(-logits), -keras.ops.softplus(logits)
        log_likelihood = keras.ops.matmul(log_p, keras.ops.transpose(sets)) + \
            keras.ops.matmul(log_not_p, keras.ops.transpose(1 - sets))
        return keras.ops.matmul(keras.ops.softmax(log_likelihood, axis=-1), sets)


def build_model(n_tags: int, input_size: int = 224, feature_layer: str = "conv4_block6_out", pooling: str = "gem",
                label_sets: Any = None, code_bits: int | None = None, camera: bool = False,
                activation: str = "sigmoid") -> keras.Model:
    """ResNet-50 up to ``feature_layer`` plus a new head: one sigmoid per tag, or a softmax over classes.

    ``activation="softmax"`` is the single-label head (one class per image,
    HiRISE, EuroSAT); ``label_sets`` applies to sigmoid heads only.

    With ``camera`` the model has a second input, the camera's evidence
    (:mod:`tagger.camera`, read by ``CameraEvidence``), beside the image
    features that the tag head reads.  With ``code_bits`` the model has a
    second output beside the tags: the similarity code layer
    (``tagger.similar.codes``), one linear unit per bit on the same standardized
    features; a bit is set where its unit is positive.
    """
    pixels = keras.Input((input_size, input_size, 3), name="rgb")
    backbone = keras.applications.ResNet50(
        include_top=False, weights=None, input_tensor=CaffePreprocess(name="preprocess")(pixels))
    features = backbone.get_layer(feature_layer).output
    pool = GeMPool(GEM_P, name="pool") if pooling == "gem" else keras.layers.GlobalAveragePooling2D(name="pool")
    x = Standardize(name="standardize")(pool(features))
    inputs, head_input = [pixels], x
    if camera:
        inputs.append(keras.Input((CAMERA_SIZE,), name="camera"))
        evidence = CameraEvidence(name="camera_standardize")(inputs[1])
        head_input = keras.layers.Concatenate(name="with_camera")([x, evidence])
    if label_sets is None:
        tags = keras.layers.Dense(n_tags, activation=activation, name="tags")(head_input)
    else:
        tags = LabelSetMarginals(label_sets, name="label_sets")(keras.layers.Dense(n_tags, name="tags")(head_input))
    outputs = [tags, keras.layers.Dense(code_bits, name="codes")(x)] if code_bits else tags
    return keras.Model(inputs if camera else pixels, outputs, name="tagger")


def load_weights(model: keras.Model, weights: str | os.PathLike | dict) -> list[str]:
    """Set every layer whose name appears in ``weights``; return the names set.

    ``weights`` is an npz path (or a mapping) keyed ``"<layer>/<index>"``.
    """
    arrays = np.load(weights) if not isinstance(weights, dict) else weights
    names = {key.rsplit("/", 1)[0] for key in arrays.keys()}
    loaded = []
    for layer in model.layers:
        if layer.name in names and layer.weights:
            current = layer.get_weights()
            new = [np.asarray(arrays[f"{layer.name}/{i}"]) for i in range(len(current))]
            for old, value in zip(current, new, strict=True):
                if old.shape != value.shape:
                    raise BundleError(f"layer {layer.name}: weights have shape {value.shape}, the model {old.shape}")
            layer.set_weights([v.astype(o.dtype) for o, v in zip(current, new, strict=True)])
            loaded.append(layer.name)
    return loaded


def save_weights(model: keras.Model, path: str | os.PathLike, only: Collection[str] | None = None,
                 skip: Collection[str] = ()) -> None:
    """Kernels as float16 (half the size), vectors as float32; the layers named in ``only``, less ``skip``.

    Batch-norm variances can exceed float16's range (65504), and vectors are
    a tiny share of the bytes, so only kernels are stored in half precision.
    """
    arrays = {f"{layer.name}/{i}": w.astype(np.float16 if w.ndim > 1 else np.float32)
              for layer in model.layers if (only is None or layer.name in only) and layer.name not in skip
              for i, w in enumerate(layer.get_weights())}
    np.savez_compressed(path, **arrays)


def backbone_layers(model: keras.Model) -> set[str]:
    """The names of the ResNet-50 layers (``conv1_*`` to ``conv5_*``): what bundles on one frozen backbone share."""
    return {layer.name for layer in model.layers if layer.name.startswith("conv") and layer.weights}


#: The backend names (tagger.backends): the TensorFlow reference is this module's, the others tagger.inference's.
BACKENDS = tuple(backends.BACKENDS)


def tensorflow_forward(traced: Any) -> Forward:
    """The traced graph, fp32: the reference every other backend is checked against."""
    return Forward(lambda inputs: traced(*map(tf.constant, inputs)),
                   lambda result: [out.numpy() for out in tf.nest.flatten(result)])


def keras_model(bundle: Bundle) -> keras.Model:
    """The bundle's network as a Keras model with its weights set."""
    try:
        model = build_model(len(bundle.vocabulary), bundle.input_size, bundle.feature_layer,
                            code_bits=bundle.code_bits, camera=bundle.camera, **head_config(bundle.card))
        load_weights(model, bundle.weights())
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle.path} does not describe a model terc-tag can build: {exc}") from None
    return model


def traced_model(bundle: Bundle, model: keras.Model | None = None) -> Any:
    """The network as one ``tf.function`` for every batch size (no retracing when the last batch is short)."""
    model = model or keras_model(bundle)
    signature = [tf.TensorSpec((None, *bundle.size[::-1], 3), tf.float32)]
    if bundle.camera:
        signature.append(tf.TensorSpec((None, CAMERA_SIZE), tf.float32))
    return tf.function(lambda *x: model(list(x) if bundle.camera else x[0], training=False),
                       reduce_retracing=True, input_signature=signature)


class TaggerSession(Session):
    """The TensorFlow reference session (``--backend tf``); the OpenVINO ones are tagger.inference's."""

    def __init__(self, bundle: str | os.PathLike, backend: str = "tf", card: ModelCard | None = None) -> None:
        """``card``: see :class:`tagger.bundle.Bundle`."""
        if backend != "tf":
            raise ValueError(f"unknown backend {backend!r} for the TensorFlow session; "
                             f"choose tf, or tagger.inference.InferenceSession for {', '.join(BACKENDS[1:])}")
        super().__init__(bundle, backend, card)
        self.model = keras_model(self)
        self.forward = tensorflow_forward(traced_model(self, self.model))

    def features(self, pixels: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """The standardized features that the tag head and the code layer read (TensorFlow, fp32)."""
        extractor = keras.Model(self.model.inputs[0], self.model.get_layer("standardize").output)
        return extractor.predict(pixels.astype(np.float32), batch_size=batch_size, verbose=0)

    def feature_map(self, pixels: np.ndarray) -> np.ndarray:
        extractor = keras.Model(self.model.inputs[0], self.model.get_layer(self.feature_layer).output)
        return extractor(pixels[None].astype(np.float32), training=False)[0].numpy()
