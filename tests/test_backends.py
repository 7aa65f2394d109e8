"""The OpenVINO backends against the TensorFlow fp32 reference, on real photos."""

import sys

import numpy as np
import pytest

from tagger.decode import decode_photo
from tagger.model import TaggerSession
from conftest import DEFAULT_MODEL, ISS

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def pixels():
    return np.stack([decode_photo(p.read_bytes(), (224, 224)) for p in sorted(ISS.glob("*.jpg"))])


@pytest.mark.parametrize("backend, tolerance, bits_off", [("openvino", 1e-4, 0), ("openvino-bf16", 0.05, 4)])
def test_backend_matches_tensorflow(session, pixels, backend, tolerance, bits_off):
    other = TaggerSession(DEFAULT_MODEL, backend=backend)
    (reference, reference_codes), (probabilities, codes) = session.predict_with_codes(pixels), \
        other.predict_with_codes(pixels)
    assert probabilities.shape == reference.shape
    assert np.abs(probabilities - reference).max() < tolerance
    assert probabilities.min() >= 0 and probabilities.max() <= 1  # bf16 rounds sums of masses past 1
    assert other.model_id != session.model_id  # switching backend re-tags on the next run
    assert codes.shape == reference_codes.shape == (len(pixels), 1)  # the second output, in the same pass
    assert np.bitwise_count(codes ^ reference_codes).sum(axis=1).max() <= bits_off
    assert other.codes_id == session.codes_id  # codes are comparable across backends


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        TaggerSession(DEFAULT_MODEL, backend="abacus")


class CountingCalls:
    """Stands in for a compiled network: passes every attribute through and counts the calls (the passes)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("backend", ["tf", "openvino", "openvino-bf16"])
def test_one_network_pass_per_batch(monkeypatch, pixels, backend):
    """Tags and codes of a batch come from one pass (0.4 ran OpenVINO once per output, halving its speed)."""
    import openvino
    import tagger.model

    compiled = []
    compile_model, function = openvino.Core.compile_model, tagger.model.tf.function

    def counting(make):
        def wrapper(*args, **kwargs):
            made = make(*args, **kwargs)
            if sys._getframe(1).f_globals["__name__"] != "tagger.model":
                return made  # Keras's own tf.functions, called while tracing
            compiled.append(CountingCalls(made))
            return compiled[-1]
        return wrapper

    monkeypatch.setattr(openvino.Core, "compile_model", counting(compile_model))
    monkeypatch.setattr(tagger.model.tf, "function", counting(function))
    session = TaggerSession(DEFAULT_MODEL, backend=backend)
    before = sum(c.calls for c in compiled)
    for batch in (pixels[:4], pixels[4:]):
        probabilities, codes = session.predict_with_codes(batch)
        assert probabilities.shape[0] == codes.shape[0] == len(batch)
    assert sum(c.calls for c in compiled) - before == 2
