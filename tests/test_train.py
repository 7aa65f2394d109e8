"""Training at a tiny input size (seconds), and the shared preprocessing path."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ISS, ROOT

from tagger import TERC_TAGS
from tagger.bundle import Bundle
from tagger.evaluate import evaluate
from tagger.labels import labels_from_metadata
from tagger.model import TaggerSession, build_model, load_weights
from tagger.sessions import load_session
from tagger.tagging.pipeline import tag_folder
from tagger.train import TrainConfig, TrainError, initial_weights, read_photos, train
from tagger.train.features import fine_tune_split, tuned_layers


@pytest.fixture
def labelled(tmp_path):
    folder = tmp_path / "labelled"
    shutil.copytree(ROOT / "examples" / "photos", folder)
    for photo in ISS.glob("*.jpg"):  # the same pictures again, as another mission's sequence
        shutil.copy(photo, folder / photo.name.replace("iss0", "iss1"))
    return folder


def test_tiny_training_writes_a_complete_bundle(labelled, tmp_path):
    out = tmp_path / "models" / "tiny"
    card = train(TrainConfig(labelled, out, weights="none", input_size=32, c_values=(0.1, 1.0), fine_tune_blocks=1,
                             learning_rates=(1e-3,), epochs=2, batch_size=8), log=lambda message: None)
    assert (out / "weights.npz").is_file()
    saved = json.loads((out / "model.json").read_text())
    assert saved == card
    assert card["vocabulary"] == list(TERC_TAGS) and card["input_size"] == 32
    split = card["split"]
    members = [set(split[s]) for s in ("train", "validation", "test")]
    assert sum(map(len, members)) == 18 and not (members[0] & members[1] or members[0] & members[2]
                                                  or members[1] & members[2])
    assert set(card["thresholds"]["calibrated"]) == set(TERC_TAGS)
    assert {"validation", "test"} <= set(card["metrics"])
    assert card["metrics"]["test"]["threshold_0.5"]["n_images"] == len(split["test"])
    head = card["training"]["recipe"]["frozen_head"]
    assert head["C"] in (0.1, 1.0) and set(head["C_sweep"]) == {"0.1", "1"}
    assert card["head"]["pooling"] == "gem"
    labels, _ = labels_from_metadata(labelled, [Path(n) for n in split["train"]], TERC_TAGS)
    combinations = [tuple(sorted(c)) for c in card["head"]["label_sets"]]
    assert len(set(combinations)) == len(combinations)
    assert set(combinations) == {tuple(sorted(tags)) for tags in labels.values()}
    assert set(card["training"]["recipe"]["fine_tune"]["validation_loss"]) == {"frozen head", "0.001"}
    assert head["fit_on"] == "training photos"  # fine-tuning stops early on validation: no refit
    session = TaggerSession(out)
    assert session.predict(np.zeros((2, 32, 32, 3), np.uint8)).shape == (2, 12)


def test_default_training_refits_the_head_on_training_and_validation_photos(labelled, tmp_path, monkeypatch):
    import tagger.train.recipe

    written, write = [], tagger.train.recipe.atomic_write

    def atomic_write(path, data):  # the card is written once, atomically, after everything else
        written.append((path.name, sorted(p.name for p in path.parent.iterdir())))
        write(path, data)

    monkeypatch.setattr(tagger.train.recipe, "atomic_write", atomic_write)
    card = train(TrainConfig(labelled, tmp_path / "m", weights="none", input_size=32, c_values=(0.1,), batch_size=8),
                 log=lambda message: None)
    assert written == [("model.json", ["codes.json", "codes.npz", "weights.npz"])]
    assert card["training"]["recipe"]["frozen_head"]["fit_on"] == "training + validation photos"
    assert set(card["metrics"]) == {"test"}  # the validation photos are no longer unseen
    codes = json.loads((tmp_path / "m" / "codes.json").read_text())  # the code map, fit on the same photos
    assert codes["bits"] == 64 and codes["method"] == "learned" and codes["fit_on"]["views"] == 2
    assert set(codes["metrics"]["test"]) >= {"map_at_64", "precision_at_10", "photos"}
    session = TaggerSession(tmp_path / "m")
    assert session.predict_with_codes(np.zeros((3, 32, 32, 3), np.uint8))[1].shape == (3, 1)
    fit = card["split"]["train"] + card["split"]["validation"]
    labels, _ = labels_from_metadata(labelled, [Path(n) for n in fit], TERC_TAGS)
    combinations = {tuple(sorted(c)) for c in card["head"]["label_sets"]}
    assert combinations == {tuple(sorted(tags)) for tags in labels.values()}
    assert card["thresholds"]["calibrated_on"].startswith("the held-out predictions")


def test_too_few_labelled_photos(tmp_path):
    (tmp_path / "few").mkdir()
    shutil.copy(next(ISS.glob("*.jpg")), tmp_path / "few")
    with pytest.raises(TrainError, match="only 1 photos"):
        train(TrainConfig(tmp_path / "few", tmp_path / "m", weights="none", input_size=32), log=lambda m: None)


def test_weights_file_loads_by_layer_name(tmp_path):
    model = build_model(3, 32, "conv4_block6_out")
    conv1 = model.get_layer("conv1_conv")
    arrays = {f"conv1_conv/{i}": np.full(w.shape, 0.5, np.float32) for i, w in enumerate(conv1.get_weights())}
    np.savez(tmp_path / "w.npz", **arrays)
    provenance = initial_weights(model, str(tmp_path / "w.npz"))
    assert provenance["layers_loaded"] == 1 and provenance["file"] == "w.npz"
    assert np.all(conv1.get_weights()[0] == 0.5)
    with pytest.raises(TrainError):
        initial_weights(model, str(tmp_path / "missing.npz"))
    bad = {"conv1_conv/0": np.zeros((1, 1, 1, 1), np.float32), "conv1_conv/1": np.zeros(64, np.float32)}
    with pytest.raises(ValueError, match="shape"):
        load_weights(model, bad)


class Spy:
    """A session that records the pixels it is asked to predict."""

    def __init__(self, session):
        self.session, self.seen = session, []

    def __getattr__(self, name):
        return getattr(self.session, name)

    def predict_with_codes(self, pixels, camera=None):
        self.seen.extend(pixels)
        return self.session.predict_with_codes(pixels, camera)


def test_fine_tune_blocks_count_back_across_stages_and_tune_only_those_blocks():
    model = build_model(3, 32, "conv4_block6_out")
    assert fine_tune_split(model, 0) == "pool"
    assert fine_tune_split(model, 2) == "conv4_block4_out"
    assert fine_tune_split(model, 7) == "conv3_block3_out"  # six blocks of stage 4, the last of stage 3
    assert fine_tune_split(model, 13) == "pool1_pool"  # every block: only the stem stays frozen
    with pytest.raises(TrainError, match="13 residual blocks"):
        fine_tune_split(model, 14)
    last_two = tuned_layers(model, "conv4_block4_out")
    assert {"conv4_block5_1_conv", "conv4_block6_3_bn"} <= last_two
    assert not any(name.startswith(("conv4_block4_", "conv3_", "conv1_")) for name in last_two)
    every = tuned_layers(model, "pool1_pool")
    assert {"conv2_block1_0_conv", "conv3_block2_2_bn", "conv4_block6_3_conv"} <= every
    assert not any(name.startswith("conv1_") for name in every)


def test_one_preprocessing_for_train_evaluate_and_tag(iss_photos, tmp_path, session):
    names = sorted(p.name for p in iss_photos.glob("*.jpg"))
    _, trained_on, _ = read_photos(iss_photos, names, session.input_size, log=print)
    tagging, evaluating = Spy(session), Spy(session)
    tag_folder(iss_photos, tmp_path / "out", tagging)
    labels, _ = labels_from_metadata(iss_photos, [p.relative_to(iss_photos) for p in iss_photos.glob("*.jpg")],
                                     session.vocabulary)
    evaluate(evaluating, iss_photos, labels)
    assert len(tagging.seen) == len(evaluating.seen) == len(trained_on) == 6
    for a, b, c in zip(trained_on, tagging.seen, evaluating.seen, strict=False):
        assert np.array_equal(a, b) and np.array_equal(b, c)


def test_camera_training_takes_exif_as_a_second_input_and_still_tags_without_it(labelled, tmp_path):
    out = tmp_path / "m"
    card = train(TrainConfig(labelled, out, weights="none", input_size=32, c_values=(0.1,), batch_size=8,
                             camera=True, code_bits=0), log=lambda message: None)
    assert set(card["inputs"]) == {"rgb", "camera"} and card["training"]["recipe"]["camera"]["weight"] == 3.0
    assert {"threshold_0.5", "threshold_0.5_without_camera"} <= set(card["metrics"]["test"])
    session = TaggerSession(out)
    names = sorted(p.name for p in labelled.glob("*.jpg"))[:4]
    _, pixels, cameras = read_photos(labelled, names, 32, log=print)
    with_exif, without = session.predict(pixels, cameras), session.predict(pixels)
    assert with_exif.shape == without.shape == (4, 12) and not np.allclose(with_exif, without)
    summary = tag_folder(labelled, tmp_path / "tagged", session)  # the pipeline feeds each photo's evidence
    assert len(summary.tagged) == len(list(labelled.glob("*.jpg")))
    pytest.importorskip("openvino")
    other = load_session(Bundle(out, "openvino"))
    assert np.abs(other.predict(pixels, cameras) - with_exif).max() < 1e-4
    with pytest.raises(TrainError, match="frozen head only"):
        # refused before any work
        TrainConfig(labelled, tmp_path / "n", weights="none", camera=True, fine_tune_blocks=1)
