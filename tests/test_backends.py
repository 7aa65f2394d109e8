"""The OpenVINO backends against the TensorFlow fp32 reference, on real photos."""

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
