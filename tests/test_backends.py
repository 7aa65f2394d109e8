"""The OpenVINO backends (built from the bundle's weights, no TensorFlow) against the TensorFlow fp32 reference."""

import json
import shutil
import sys

import numpy as np
import pytest
from conftest import DEFAULT_MODEL, HIRISE, ISS, ROOT

from tagger.bundle import Bundle, BundleError
from tagger.decode import decode_photo
from tagger.inference import InferenceSession
from tagger.model import TaggerSession
from tagger.sessions import load_session

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def pixels():
    return np.stack([decode_photo(p.read_bytes(), (224, 224)) for p in sorted(ISS.glob("*.jpg"))])


def _decisions(session, probabilities):
    thresholds = session.thresholds()
    return [session.decide(p, thresholds) for p in probabilities]


@pytest.mark.parametrize("backend, tolerance, bits_off", [("openvino", 1e-4, 0), ("openvino-bf16", 0.05, 4)])
def test_backend_matches_tensorflow(session, pixels, backend, tolerance, bits_off):
    other = load_session(Bundle(DEFAULT_MODEL, backend))
    assert isinstance(other, InferenceSession)  # tagging never builds the Keras model
    (reference, reference_codes), (probabilities, codes) = session.predict_with_codes(pixels), \
        other.predict_with_codes(pixels)
    assert probabilities.shape == reference.shape
    assert np.abs(probabilities - reference).max() < tolerance
    assert probabilities.min() >= 0 and probabilities.max() <= 1  # bf16 rounds sums of masses past 1
    assert other.model_id != session.model_id  # switching backend re-tags on the next run
    assert other.model_id == Bundle(DEFAULT_MODEL, backend).model_id  # unchanged by how the graph is made
    assert codes.shape == reference_codes.shape == (len(pixels), 1)  # the second output, in the same pass
    assert np.bitwise_count(codes ^ reference_codes).sum(axis=1).max() <= bits_off
    assert other.codes_id == session.codes_id  # codes are comparable across backends
    if backend == "openvino":
        assert _decisions(other, probabilities) == _decisions(session, reference)


@pytest.mark.parametrize("name, photos", [("hirise", HIRISE), ("eurosat", HIRISE)])
def test_single_label_bundles_match_tensorflow(name, photos):
    """The softmax heads, and EuroSAT's tuned stage-4 blocks on its own input size."""
    reference = TaggerSession(ROOT / "models" / name)
    built = InferenceSession(ROOT / "models" / name, "openvino")
    batch = np.stack([decode_photo(p.read_bytes(), reference.size) for p in sorted(photos.glob("*.jpg"))])
    expected, got = reference.predict(batch), built.predict(batch)
    assert np.abs(got - expected).max() < 1e-4
    assert _decisions(built, got) == _decisions(reference, expected)


def _variant(tmp_path, change_card=None, change_weights=None):
    """A copy of the default model with its card or weights changed (the shared backbone stays as it is)."""
    bundle = tmp_path / "variant"
    shutil.copytree(DEFAULT_MODEL, bundle)
    card = json.loads((bundle / "model.json").read_text())
    if change_card:
        change_card(card)
    (bundle / "model.json").write_text(json.dumps(card))
    if change_weights:
        with np.load(bundle / "weights.npz") as npz:
            arrays = dict(npz)
        change_weights(arrays)
        np.savez(bundle / "weights.npz", **arrays)
    return bundle


def _agrees(bundle, pixels, camera=None):
    reference, built = TaggerSession(bundle), load_session(Bundle(bundle, "openvino"))
    (expected, expected_codes), (got, codes) = reference.predict_with_codes(pixels, camera), \
        built.predict_with_codes(pixels, camera)
    assert np.abs(got - expected).max() < 1e-4
    assert np.array_equal(codes, expected_codes)
    return built


@pytest.mark.slow
def test_older_and_other_cards_match_tensorflow(tmp_path, pixels):
    """Average pooling and independent sigmoids (cards before ``head`` options), an earlier feature layer."""
    def older(card):
        card["head"] = "average pooling, dense sigmoid"
        card["backbone"]["feature_layer"] = "conv4_block5_out"
    _agrees(_variant(tmp_path, older), pixels)


@pytest.mark.slow
def test_camera_input_matches_tensorflow(tmp_path, pixels):
    from tagger.camera import MISSING, SIZE

    rng = np.random.default_rng(0)

    def with_camera(card):
        card["inputs"] = {"rgb": "pixels", "camera": "EXIF evidence"}

    def camera_weights(arrays):
        arrays["camera_standardize/0"] = rng.normal(0, 1, SIZE).astype(np.float32)
        arrays["camera_standardize/1"] = rng.uniform(0.5, 2, SIZE).astype(np.float32)
        arrays["tags/0"] = np.concatenate([arrays["tags/0"], rng.normal(0, 0.3, (SIZE, 12)).astype(np.float16)])

    camera = np.tile(MISSING, (len(pixels), 1))
    camera[::2] = [np.log(1 / 250), np.log(800), np.log(50), 8, 0, 0, 0, 0]  # half the photos have EXIF
    camera[1, [2, 6]] = 0, 1  # one lacks its focal length only
    built = _agrees(_variant(tmp_path, with_camera, camera_weights), pixels, camera)
    assert not np.allclose(built.predict(pixels, camera), built.predict(pixels))  # the evidence is read


@pytest.mark.slow
def test_a_card_the_builder_cannot_express_is_converted_once_and_kept(tmp_path, pixels, capfd, monkeypatch):
    """Kept in the bundle; in the per-user cache where the bundle cannot be written."""
    import openvino

    bundle = _variant(tmp_path, lambda card: card["backbone"].update(feature_layer="conv4_block6_add"))
    name = f"graph-{Bundle(bundle).network_id}.xml"
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    save = openvino.save_model

    def read_only_bundle(graph, path, **kwargs):
        if bundle in path.parents:
            raise PermissionError(13, "Permission denied", str(path))
        return save(graph, path, **kwargs)

    monkeypatch.setattr(openvino, "save_model", read_only_bundle)
    _agrees(bundle, pixels)
    assert capfd.readouterr().err.count("converting") == 1
    assert (cache / "terc-tag" / "graphs" / name).is_file() and not list(bundle.glob("graph-*"))
    monkeypatch.setattr(openvino, "save_model", save)
    again = InferenceSession(bundle, "openvino")  # read back from the cache: no TensorFlow, no note
    assert "converting" not in capfd.readouterr().err
    assert np.abs(again.predict(pixels) - TaggerSession(bundle).predict(pixels)).max() < 1e-4
    with pytest.raises(BundleError, match="heat maps"):
        again.feature_map(pixels[0])
    shutil.rmtree(cache)
    with pytest.raises(BundleError, match="converted from TensorFlow once"):  # a session built alone cannot trace
        InferenceSession(bundle, "openvino")
    load_session(Bundle(bundle, "openvino"))
    assert capfd.readouterr().err.count("converting") == 1
    assert (bundle / name).is_file()


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        InferenceSession(DEFAULT_MODEL, backend="abacus")
    with pytest.raises(ValueError, match="unknown backend"):
        TaggerSession(DEFAULT_MODEL, backend="openvino")


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
            if sys._getframe(1).f_globals["__name__"] not in ("tagger.model", "tagger.inference"):
                return made  # Keras's own tf.functions, called while tracing
            compiled.append(CountingCalls(made))
            return compiled[-1]
        return wrapper

    monkeypatch.setattr(openvino.Core, "compile_model", counting(compile_model))
    monkeypatch.setattr(tagger.model.tf, "function", counting(function))
    session = load_session(Bundle(DEFAULT_MODEL, backend))
    before = sum(c.calls for c in compiled)
    for batch in (pixels[:4], pixels[4:]):
        probabilities, codes = session.predict_with_codes(batch)
        assert probabilities.shape[0] == codes.shape[0] == len(batch)
    assert compiled and sum(c.calls for c in compiled) - before == 2
