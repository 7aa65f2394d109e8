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
    Backend("openvino", "OpenVINO fp32: the reference's probabilities (within 1e-5) without TensorFlow",
            {"INFERENCE_PRECISION_HINT": "f32", **_LATENCY}),
    Backend("openvino-bf16", "OpenVINO with the CPU's bfloat16 units where it has them (AVX512_BF16, AMX; fp32 "
            "elsewhere): about 3x TensorFlow's speed, and the same decisions as TensorFlow on 7,523 of 7,524 "
            "tags measured",
            {"INFERENCE_PRECISION_HINT": "bf16", **_LATENCY}),
)}

#: What every command that predicts uses unless told otherwise: the fastest backend whose decisions agree with
#: TensorFlow's, as measured (docs/benchmarks.md: 2.97x, 7,523 of 7,524 decisions).  Training is not inference:
#: ``train`` and ``fit-codes`` read features with TensorFlow, the reference the model card reports.
DEFAULT = "openvino-bf16"


def backend(name: str) -> Backend:
    """The backend called ``name``; a ValueError that lists the choices otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}") from None
