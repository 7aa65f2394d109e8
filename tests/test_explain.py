"""Heat maps: the evidence for a tag lies where the thing is, and the command writes one PNG per tag."""

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, ISS
from PIL import Image

from tagger.bundle import Bundle
from tagger.cli import main
from tagger.decode import decode
from tagger.explain import Explainer
from tagger.sessions import load_session

MOON = EXAMPLES / "iss037e017572.jpg"  # a small Moon on black space


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_moon_is_where_the_evidence_for_moon_is(session):
    pixels, camera = decode(MOON.read_bytes(), session.size)
    explanation = Explainer(session)(pixels, camera)
    assert list(explanation.maps) == ["Moon"] and explanation.probabilities["Moon"] > 0.5
    heat = explanation.maps["Moon"]
    assert heat.shape == (14, 14) and heat.max() == 1.0 and heat.min() >= 0
    brightness = pixels.mean(axis=-1).reshape(14, 16, 14, 16).mean(axis=(1, 3))  # the photo on the same grid
    hottest = np.unravel_index(heat.argmax(), heat.shape)
    moon = np.unravel_index(brightness.argmax(), brightness.shape)
    assert max(abs(hottest[0] - moon[0]), abs(hottest[1] - moon[1])) <= 1
    assert heat[brightness < brightness.mean()].mean() < 0.2  # the dark sky holds little evidence


def test_each_tag_asked_for_has_its_own_map(session):
    pixels, camera = decode(MOON.read_bytes(), session.size)
    explanation = Explainer(session)(pixels, camera, tags=["Moon", "Stars"])
    assert set(explanation.maps) == {"Moon", "Stars"}
    assert not np.allclose(explanation.maps["Moon"], explanation.maps["Stars"])


def test_cli_writes_a_png_per_tag_and_a_sheet_and_reports_bad_input(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    out = tmp_path / "explained"
    result = run("explain", MOON, broken, ISS / "iss052e033191.jpg", "--out", out, "--tags", "Moon,Night")
    assert result.exit_code == 1, result.output
    assert "broken.jpg" in result.output and "iss052e033191.jpg: Moon" in result.output
    for name in ("iss037e017572", "iss052e033191"):
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == ["Moon.png", "Night.png", "sheet.png"]
    with Image.open(out / "iss037e017572" / "Moon.png") as image, Image.open(MOON) as original:
        assert max(image.size) <= 512 and image.mode == "RGB"
        assert abs(image.size[0] / image.size[1] - original.size[0] / original.size[1]) < 0.02  # not squashed
    unknown = run("explain", MOON, "--out", out, "--tags", "Moon,Unicorn")
    assert unknown.exit_code == 2 and "Unicorn" in unknown.output and len(unknown.output.splitlines()) == 1


def tensorflow_gradcam(session, pixels, camera, tag):
    """Grad-CAM as terc-tag 0.4 computed it: TensorFlow's gradients through the Keras head."""
    from tagger._tf import keras, tf

    model = session.model
    features = model.get_layer(session.feature_layer).output
    backbone = keras.Model(model.inputs[0], features)
    head = keras.Model([features, *model.inputs[1:]], model.outputs[0])
    extra = [tf.constant(camera[None])] if session.camera else []
    feature_map = backbone(tf.constant(pixels[None].astype(np.float32)), training=False)
    with tf.GradientTape() as tape:
        tape.watch(feature_map)
        p = head([feature_map, *extra], training=False)[0]
        log_p = tf.math.log(tf.clip_by_value(p[session.vocabulary.index(tag)], 1e-7, 1.0))
    gradient = tape.gradient(log_p, feature_map)[0].numpy()
    weighted = np.maximum((feature_map[0].numpy() * gradient.mean(axis=(0, 1))).sum(axis=-1), 0)
    return weighted / weighted.max() if weighted.max() > 0 else weighted


@pytest.mark.parametrize("backend, correlation", [("openvino", 0.999), ("openvino-bf16", 0.98)])
def test_maps_without_tensorflow_are_tensorflows_gradcam(session, backend, correlation):
    """The numpy gradient on OpenVINO's feature map gives TensorFlow's Grad-CAM maps (review's heat maps)."""
    explain = Explainer(load_session(Bundle(session.path, backend)))
    photos = sorted(ISS.glob("*.jpg")) + sorted(EXAMPLES.glob("*.jpg"))[:4]
    worst = 1.0
    for photo in photos:
        pixels, camera = decode(photo.read_bytes(), session.size)
        explanation = explain(pixels, camera)
        reference = session.predict(pixels[None], camera[None])[0]
        differences = [abs(explanation.probabilities[t] - p)
                       for t, p in zip(session.vocabulary, reference, strict=True)]
        assert max(differences) < 0.05
        for tag, heat in explanation.maps.items():
            expected = tensorflow_gradcam(session, pixels, camera, tag)
            worst = min(worst, np.corrcoef(heat.ravel(), expected.ravel())[0, 1])
    print(f"{backend}: worst correlation {worst:.5f} over {len(photos)} photos")
    assert worst > correlation
