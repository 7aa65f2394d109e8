"""Stage 3 without TensorFlow: the bundle's network as an OpenVINO graph, built from its numpy weights.

``tag``, ``similar``, ``evaluate``, ``review`` and the Ray engine predict
with an :class:`InferenceSession`.  It builds the network of
:func:`tagger.model.build_model` node by node with OpenVINO's opset API from
the arrays in the bundle (ResNet-50 up to the card's ``feature_layer``, each
batch norm folded into its convolution, the caffe preprocessing, GeM or
average pooling, standardization, the head, the label-set marginals, the
code layer, the camera input) and compiles it for this CPU.  So a cron run
imports neither TensorFlow nor Keras, bundles need no second copy of their
weights (the shipped ones share one 16 MB backbone file), and a bundle
written by any earlier version works as it is, with its ``model_id``.

A card this builder cannot express (a feature layer inside a residual block,
say) is converted once from the TensorFlow model instead, and the converted
graph kept in the bundle, or in the per-user cache when the bundle is read
only (:func:`converted_graph`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tagger.backends import backend as find_backend
from tagger.bundle import Bundle, BundleError
from tagger.camera import MISSING as CAMERA_MISSING
from tagger.camera import SIZE as CAMERA_SIZE
from tagger.card import head_config
from tagger.errors import MissingPackage
from tagger.hamming import pack

#: ResNet-50's preprocessing ("caffe" mode of keras.applications.resnet50):
#: RGB -> BGR, then subtract the ImageNet channel means. No scaling.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
PREPROCESSING = "resnet50 caffe: RGB->BGR, minus ImageNet BGR mean (103.939, 116.779, 123.68), input 0..255"

#: How much the camera's evidence weighs against the image features in the head: the standardized
#: evidence is multiplied by it, which divides its L2 penalty by its square (chosen in
#: benchmarks/camera_cv.py).
CAMERA_WEIGHT = 3.0
#: The epsilons of Keras's ResNet-50 batch norms and of the Standardize layer.
BATCH_NORM_EPSILON = 1.001e-5
STANDARDIZE_EPSILON = 1e-6
#: Generalized-mean pooling's exponent, and the floor its input is clipped to.
GEM_P, GEM_FLOOR = 3.0, 1e-6

#: ResNet-50's stages after the stem: name, filters, blocks, stride of the first block.
STAGES = (("conv2", 64, 3, 1), ("conv3", 128, 4, 2), ("conv4", 256, 6, 2), ("conv5", 512, 3, 2))


class UnsupportedCard(BundleError):
    """A card whose network :func:`build_graph` cannot express; it is converted from TensorFlow instead."""


def _opset() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise MissingPackage("the openvino backends need OpenVINO: pip install openvino") from None
    try:
        from openvino import opset13 as ops
    except ImportError:  # OpenVINO before 2024.4 kept the opsets under openvino.runtime
        from openvino.runtime import opset13 as ops
    return ov, ops


def _stages_to(feature_layer: str) -> list[tuple[str, int, int, int]]:
    """The stages, each cut to its blocks, that end at ``feature_layer`` (a block output, ``convS_blockB_out``)."""
    match = re.fullmatch(r"(conv[2-5])_block(\d+)_out", feature_layer)
    names = [stage[0] for stage in STAGES]
    if not match or match[1] not in names or not 1 <= int(match[2]) <= STAGES[names.index(match[1])][2]:
        raise UnsupportedCard(f"feature layer {feature_layer!r} is not a residual block's output")
    last = names.index(match[1])
    return [(name, filters, int(match[2]) if i == last else blocks, stride)
            for i, (name, filters, blocks, stride) in enumerate(STAGES[:last + 1])]


def build_graph(bundle: Bundle, weights: dict[str, np.ndarray], feature_map: bool = False) -> Any:
    """The bundle's network as an ``openvino.Model``: inputs ``rgb`` (n, h, w, 3) 0..255 and maybe ``camera``.

    Outputs ``tags`` and, with a code map, ``codes``; with ``feature_map``
    also the feature layer's map, (n, h', w', channels), for heat maps.
    The same arithmetic as :func:`tagger.model.build_model`, checked
    against it in ``tests/test_backends.py``.
    """
    ov, ops = _opset()
    try:
        config = head_config(bundle.card)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsupportedCard(f"head: {exc}") from None
    if config["pooling"] not in ("gem", "average"):
        raise UnsupportedCard(f"pooling {config['pooling']!r}")
    stages = _stages_to(bundle.feature_layer)

    def array(key: str) -> np.ndarray:
        try:
            return np.asarray(weights[key], np.float32)
        except KeyError:
            raise BundleError(f"{bundle.path}: its weights lack {key}") from None

    def const(value: ArrayLike) -> Any:
        return ops.constant(np.asarray(value, np.float32))

    def conv(x: Any, name: str, stride: int = 1, pad: int = 0, flip_input: bool = False) -> Any:
        """Keras's Conv2D + BatchNormalization ``name_conv``/``name_bn``, the norm folded into the kernel."""
        kernel, bias = array(f"{name}_conv/0"), array(f"{name}_conv/1")
        gamma, beta, mean, variance = (array(f"{name}_bn/{i}") for i in range(4))
        scale = gamma / np.sqrt(variance + BATCH_NORM_EPSILON)
        kernel = (kernel * scale).transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if flip_input:
            kernel = kernel[:, ::-1]  # reads RGB as the kernel's BGR
        y = ops.convolution(x, const(np.ascontiguousarray(kernel)), [stride, stride], [pad, pad], [pad, pad], [1, 1])
        return ops.add(y, const(((bias - mean) * scale + beta).reshape(1, -1, 1, 1)))

    def block(x: Any, name: str, stride: int, shortcut_conv: bool) -> Any:
        shortcut = conv(x, f"{name}_0", stride) if shortcut_conv else x
        y = ops.relu(conv(x, f"{name}_1", stride))
        y = ops.relu(conv(y, f"{name}_2", pad=1))
        return ops.relu(ops.add(shortcut, conv(y, f"{name}_3")))

    h, w = bundle.size[1], bundle.size[0]
    rgb = ops.parameter(ov.PartialShape([-1, h, w, 3]), ov.Type.f32, name="rgb")
    x = ops.transpose(ops.subtract(rgb, const(IMAGENET_BGR_MEAN[::-1])), ops.constant(np.array([0, 3, 1, 2])))
    x = ops.relu(conv(x, "conv1", stride=2, pad=3, flip_input=True))
    # after a ReLU, so padding with 0 is padding with -inf
    x = ops.max_pool(x, [2, 2], [1, 1], [1, 1], [1, 1], [3, 3]).output(0)
    for name, _, blocks, stride in stages:
        for index in range(1, blocks + 1):
            x = block(x, f"{name}_block{index}", stride if index == 1 else 1, shortcut_conv=index == 1)
    spatial = ops.constant(np.array([2, 3]))
    if config["pooling"] == "gem":
        pooled = ops.power(ops.reduce_mean(ops.power(ops.maximum(x, const(GEM_FLOOR)), const(GEM_P)), spatial),
                           const(1.0 / GEM_P))
    else:
        pooled = ops.reduce_mean(x, spatial)
    features = _standardize(ops, const, pooled, array("standardize/0"), array("standardize/1"))
    inputs, head_input = [rgb], features
    if bundle.camera:
        camera = ops.parameter(ov.PartialShape([-1, CAMERA_SIZE]), ov.Type.f32, name="camera")
        inputs.append(camera)
        head_input = ops.concat([features, _camera_evidence(ops, const, camera, array)], 1)
    logits = ops.add(ops.matmul(head_input, const(array("tags/0")), False, False), const(array("tags/1")))
    outputs = [_tag_probabilities(ops, const, logits, config)]
    if bundle.code_bits:
        outputs.append(ops.add(ops.matmul(features, const(array("codes/0")), False, False), const(array("codes/1"))))
    if feature_map:
        outputs.append(ops.transpose(x, ops.constant(np.array([0, 2, 3, 1]))))
    names = ["tags", "codes"][:1 + bool(bundle.code_bits)] + ["feature_map"] * feature_map
    results = [ops.result(node) for node in outputs]
    for result, name in zip(results, names, strict=False):
        result.output(0).get_tensor().set_names({name})
    return ov.Model(results, inputs, "tagger")


def _camera_evidence(ops: Any, const: Callable[[ArrayLike], Any], camera: Any,
                     array: Callable[[str], np.ndarray]) -> Any:
    """What ``tagger.model.CameraEvidence`` gives: the standardized evidence, a missing value at the mean, weighted."""
    z = ops.split(_standardize(ops, const, camera, array("camera_standardize/0"), array("camera_standardize/1")),
                  ops.constant(np.int64(1)), 2)
    present = ops.subtract(const(1.0), ops.split(camera, ops.constant(np.int64(1)), 2).output(1))
    return ops.multiply(ops.concat([ops.multiply(z.output(0), present), z.output(1)], 1), const(CAMERA_WEIGHT))


def _tag_probabilities(ops: Any, const: Callable[[ArrayLike], Any], logits: Any, config: dict) -> Any:
    """The head's output: marginals over the label sets, else sigmoids or a softmax (``head_config``)."""
    if config["label_sets"] is None:
        return ops.sigmoid(logits) if config["activation"] == "sigmoid" else ops.softmax(logits, -1)
    sets = np.asarray(config["label_sets"], np.float32)
    log_p, log_not_p = ops.negative(ops.softplus(ops.negative(logits))), ops.negative(ops.softplus(logits))
    likelihood = ops.add(ops.matmul(log_p, const(sets.T), False, False),
                         ops.matmul(log_not_p, const(1 - sets.T), False, False))
    return ops.matmul(ops.softmax(likelihood, -1), const(sets), False, False)


def _standardize(ops: Any, const: Callable[[ArrayLike], Any], x: Any, mean: np.ndarray, variance: np.ndarray) -> Any:
    """(x - mean) / sqrt(variance + epsilon), as ``tagger.model.Standardize``; folded into one multiply-add."""
    scale = 1.0 / np.sqrt(variance + STANDARDIZE_EPSILON)
    return ops.add(ops.multiply(x, const(scale)), const(-mean * scale))


def user_cache() -> Path:
    """terc-tag's per-user cache folder (``$XDG_CACHE_HOME/terc-tag``, else ``~/.cache/terc-tag``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "terc-tag"


def converted_graph(bundle: Bundle, reason: str, trace: Callable[[Bundle], Any] | None = None) -> Any:
    """The graph of a card :func:`build_graph` cannot express, converted from TensorFlow once and then kept.

    Kept as ``graph-<network id>.xml``/``.bin`` in the bundle, or in the
    per-user cache when the bundle cannot be written; the name follows the
    network, so a changed bundle is converted anew.  ``trace(bundle)`` gives
    the network as a TensorFlow concrete function (``tagger.sessions`` passes
    one); without it, a graph not yet kept is a :class:`BundleError`.
    """
    ov, _ = _opset()
    name = f"graph-{bundle.network_id}.xml"
    for folder in (bundle.path, user_cache() / "graphs"):
        if (folder / name).is_file():
            return ov.Core().read_model(folder / name)
    if trace is None:
        raise BundleError(f"{bundle.path} must be converted from TensorFlow once ({reason}); "
                          "load it through tagger.sessions.load_session")
    print(f"note: converting {bundle.path} from TensorFlow once ({reason})", file=sys.stderr)
    graph = ov.convert_model(trace(bundle))
    for folder in (bundle.path, user_cache() / "graphs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            ov.save_model(graph, folder / name, compress_to_fp16=False)
            break
        except OSError:
            continue
    return graph


def compile_graph(graph: Any, properties: dict) -> Any:
    """Compile for this CPU.

    Without OpenVINO's compiled-model cache (CACHE_DIR): measured on the
    default model, it cut compiling from 0.12 to 0.085 s but raised the peak
    memory by 30 MB and kept a 33 MB blob per bundle and backend in the
    user's cache (README, "Tagging without TensorFlow").
    """
    ov, _ = _opset()
    return ov.Core().compile_model(graph, "CPU", properties)


class Forward:
    """One network pass per batch, every output read from it: ``forward(inputs) -> [tags, codes?, ...]``.

    ``run`` is the backend's compiled callable; every output comes from a
    single call, so the tags and the codes of a batch cost one pass.
    """

    def __init__(self, run: Callable[[list[np.ndarray]], Any], read: Callable[[Any], list[np.ndarray]]) -> None:
        self.run, self.read = run, read

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.read(self.run(inputs))


def openvino_forward(compiled: Any) -> Forward:
    return Forward(compiled, lambda result: [result[output] for output in compiled.outputs])


class Session(Bundle):
    """A loaded bundle that predicts; subclasses set ``self.forward`` (a :class:`Forward`)."""

    forward: Forward

    def inputs(self, pixels: np.ndarray, camera: np.ndarray | None) -> list[np.ndarray]:
        """The network's inputs for a uint8 batch: pixels as float32 and, for a camera model, the evidence."""
        inputs = [pixels.astype(np.float32)]
        if self.camera:
            inputs.append(np.tile(CAMERA_MISSING, (len(pixels), 1)) if camera is None
                          else np.asarray(camera, np.float32))
        return inputs

    def predict(self, pixels: np.ndarray, camera: np.ndarray | None = None) -> np.ndarray:
        """Tag probabilities, shape ``(n, n_tags)``, for a uint8 batch ``(n, h, w, 3)``."""
        return self.predict_with_codes(pixels, camera)[0]

    def predict_with_codes(self, pixels: np.ndarray,
                           camera: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Tag probabilities and, when the bundle has a code map, packed codes ``(n, bits / 64)`` uint64.

        ``camera``: each photo's evidence (``tagger.camera.evidence``), read
        only by a model that takes it; None means no photo has EXIF.  One
        forward pass gives both.  Probabilities are clipped to [0, 1]: in
        bfloat16 a sum of label-set posterior masses can round a few
        thousandths past 1, which predictions.csv must not show.
        """
        outputs = self.forward(self.inputs(pixels, camera))
        probabilities = np.clip(np.asarray(outputs[0]), 0.0, 1.0)
        return probabilities, pack(np.asarray(outputs[1]) > 0) if self.code_bits else None

    def feature_map(self, pixels: np.ndarray) -> np.ndarray:
        """The feature layer's map of one uint8 photo, ``(h', w', channels)``, for heat maps."""
        raise NotImplementedError


class InferenceSession(Session):
    """A bundle compiled with OpenVINO for one backend of :mod:`tagger.backends`; no TensorFlow.

    ``trace``: see :func:`converted_graph`, for the cards the builder cannot express.
    """

    def __init__(self, bundle: str | os.PathLike, backend: str = "openvino-bf16",
                 trace: Callable[[Bundle], Any] | None = None) -> None:
        chosen = find_backend(backend)
        if chosen.openvino is None:
            raise ValueError(f"backend {backend!r} is not an OpenVINO backend")
        super().__init__(bundle, backend)
        self.properties, self._trace = chosen.openvino, trace
        self._feature_net: Forward | None = None
        self.forward = openvino_forward(compile_graph(self._graph(feature_map=False), self.properties))

    def _graph(self, feature_map: bool) -> Any:
        try:
            graph = build_graph(self, self.weights(), feature_map)
        except UnsupportedCard as exc:
            if feature_map:
                raise BundleError(f"{self.path}: no heat maps without TensorFlow ({exc})") from None
            graph = converted_graph(self, str(exc), self._trace)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{self.path} does not describe a model terc-tag can build: {exc}") from None
        return graph

    def feature_map(self, pixels: np.ndarray) -> np.ndarray:
        if self._feature_net is None:  # compiled on first use: tagging never needs it
            self._feature_net = openvino_forward(compile_graph(self._graph(feature_map=True), self.properties))
        return self._feature_net(self.inputs(pixels[None], None))[-1][0]
