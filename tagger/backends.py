"""The inference backends, by name: what ``--backend`` offers, read without importing any of them.

``tf`` runs the Keras model (the reference; needs ``terc-tag[train]``).
Every other backend is an OpenVINO compilation of the graph that
:mod:`tagger.inference` builds from the bundle's weights, without
TensorFlow; adding one is one entry here, its compile properties.  (An int8
graph from NNCF's post-training quantization was measured and left out:
``benchmarks/int8.py``.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """One ``--backend`` choice."""

    name: str
    help: str
    #: OpenVINO compile properties; None for the TensorFlow reference.
    openvino: dict | None = None


_LATENCY = {"PERFORMANCE_HINT": "LATENCY"}

BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("tf", "TensorFlow fp32, the reference (needs terc-tag[train])"),
    Backend("openvino", "OpenVINO fp32: the reference's answers without TensorFlow",
            {"INFERENCE_PRECISION_HINT": "f32", **_LATENCY}),
    Backend("openvino-bf16", "OpenVINO with the CPU's bfloat16 units where it has them (AVX512_BF16, AMX): "
            "about 3x faster than fp32; probabilities within a few thousandths",
            {"INFERENCE_PRECISION_HINT": "bf16", **_LATENCY}),
)}

#: What ``tag`` uses unless told otherwise.
DEFAULT = "openvino-bf16"
#: What ``evaluate``, ``similar``, ``explain`` and ``review`` use unless told otherwise: the reference's
#: answers (probabilities within 1e-5 of TensorFlow's) without TensorFlow.
REFERENCE = "openvino"


def backend(name: str) -> Backend:
    """The backend called ``name``; a ValueError that lists the choices otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}") from None
