"""Single-label bundles (one class per image, a softmax head), shared backbones and bundled model names."""

import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

from tagger._tf import keras
from tagger.bundle import Bundle, BundleError, find_bundle
from tagger.cli import main
from tagger.discover import discover
from tagger.evaluate import evaluate
from tagger.labels import labels_from_folders
from tagger.metadata import read_keywords
from tagger.metrics import evaluate_classes
from tagger.model import TaggerSession, backbone_layers, build_model, save_weights
from tagger.state import State
from tagger.tagging.pipeline import tag_folder
from tagger.train import TrainConfig, TrainError, train

CLASSES = ("crater", "dune", "other")


@pytest.fixture(scope="module")
def classes_folder(tmp_path_factory):
    """The sample photos in one folder per class (EuroSAT's layout), twice over as two "missions"."""
    folder = tmp_path_factory.mktemp("classes")
    photos = sorted((ROOT / "examples" / "photos").glob("*.jpg"))
    for i, photo in enumerate(photos):
        for mission in ("0", "1"):
            target = folder / CLASSES[i % 3] / photo.name.replace("iss0", f"iss{mission}")
            target.parent.mkdir(exist_ok=True)
            shutil.copy(photo, target)
    return folder


@pytest.fixture(scope="module")
def bundles(classes_folder, tmp_path_factory):
    """Two single-label bundles trained on one frozen backbone kept in a shared folder."""
    models = tmp_path_factory.mktemp("models")
    start = models / "start.npz"  # one backbone start for both, as the stand-in ImageNet file would be
    keras.utils.set_random_seed(0)  # the same start whichever tests ran before
    model = build_model(3, 32)
    save_weights(model, start, only=backbone_layers(model))
    labels, vocabulary = labels_from_folders(discover(classes_folder).photos)
    cards = [train(TrainConfig(classes_folder, models / name, vocabulary=vocabulary, labels=labels, weights=str(start),
                               input_size=32, c_values=(0.1,), batch_size=8, code_bits=0,
                               backbone_dir=models / "backbones", seed=seed), log=lambda message: None)
             for seed, name in enumerate(("one", "two"))]
    return models, cards


def test_one_class_per_image_gives_a_softmax_head_that_says_so(bundles):
    models, (card, _) = bundles
    assert card["head"]["activation"] == "softmax" and "softmax" in card["head"]["description"]
    assert card["head"]["label_sets"] is None
    assert card["thresholds"]["default"] == 0.0 and "calibrated" not in card["thresholds"]
    assert card["vocabulary"] == list(CLASSES)
    report = card["metrics"]["test"]["top_class"]
    assert report["single_label"] and 0 <= report["overall"]["accuracy"] <= 1
    assert np.array(report["confusion_matrix"]).sum() == report["n_images"]
    session = TaggerSession(models / "one")
    probabilities = session.predict(np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)


def test_bundles_on_one_frozen_backbone_share_one_file_of_it(bundles):
    models, cards = bundles
    assert [p.name for p in (models / "backbones").iterdir()] == [
        cards[0]["backbone"]["weights"]["shared_file"].split("/")[-1]]
    assert cards[0]["backbone"]["weights"]["shared_file"] == cards[1]["backbone"]["weights"]["shared_file"]
    with np.load(models / "one" / "weights.npz") as own:
        assert own.files and not any(key.startswith("conv") for key in own.files)  # the head only
    with np.load(models / "backbones" / cards[0]["backbone"]["weights"]["shared_file"].split("/")[-1]) as shared:
        assert all(key.startswith("conv") for key in shared.files)


def test_a_fine_tuned_bundle_shares_the_frozen_backbone_and_carries_its_tuned_blocks(bundles, classes_folder):
    models, cards = bundles
    card = train(TrainConfig(classes_folder, models / "tuned", weights=str(models / "start.npz"), input_size=32,
                             c_values=(0.01,), fine_tune_blocks=1, learning_rates=(1e-4,), epochs=3, batch_size=8,
                             code_bits=0, backbone_dir=models / "backbones"), log=lambda message: None)
    assert card["training"]["recipe"]["fine_tune"]["kept"], card["training"]["recipe"]["fine_tune"]
    shared_name = cards[0]["backbone"]["weights"]["shared_file"].split("/")[-1]
    assert [p.name for p in (models / "backbones").iterdir()] == [shared_name]  # the frozen file, not a tuned one
    with np.load(models / "tuned" / "weights.npz") as own, np.load(models / "backbones" / shared_name) as shared:
        tuned = {key for key in own.files if key.startswith("conv")}
        assert tuned and {key.split("/")[0] for key in tuned} == {
            name for name in backbone_layers(build_model(3, 32)) if name.startswith("conv4_block6_")}
        kernel = own["conv4_block6_3_conv/0"]
        assert not np.array_equal(kernel, shared["conv4_block6_3_conv/0"])
    session = TaggerSession(models / "tuned")
    assert np.array_equal(session.model.get_layer("conv4_block6_3_conv").get_weights()[0], kernel.astype("float32"))


def test_fine_tuning_that_would_not_fit_in_memory_stops_before_writing(classes_folder, tmp_path, monkeypatch):
    monkeypatch.setattr("tagger.train.features.available_memory", lambda: 10_000)
    with pytest.raises(TrainError, match=r"fine-tuning caches \d+ feature maps .* more than the 0\.0 GB"):
        train(TrainConfig(classes_folder, tmp_path / "m", weights="none", input_size=32, fine_tune_blocks=1,
                          backbone_dir=tmp_path / "b"), log=lambda message: None)
    assert not (tmp_path / "m").exists() and not (tmp_path / "b").exists()


def test_a_changed_or_missing_shared_backbone_is_a_clear_error(bundles, tmp_path):
    models, _ = bundles
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    identity = Bundle(copy / "one").model_id
    backbone = next((copy / "backbones").iterdir())
    data = bytearray(backbone.read_bytes())
    data[-40] ^= 1
    backbone.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="is not the backbone"):
        Bundle(copy / "one")
    backbone.unlink()
    with pytest.raises(BundleError, match="needs its shared backbone"):
        Bundle(copy / "one")
    shutil.copytree(models / "backbones", copy / "backbones", dirs_exist_ok=True)
    assert Bundle(copy / "one").model_id == identity


def test_tag_writes_the_top_class_or_with_a_threshold_only_a_sure_one(bundles, classes_folder, tmp_path):
    models, _ = bundles
    session = TaggerSession(models / "one")
    summary = tag_folder(classes_folder, tmp_path / "out", session)
    assert len(summary.tagged) == 24
    for photo in (tmp_path / "out").rglob("*.jpg"):
        assert len([k for k in read_keywords(photo.read_bytes()) if k in CLASSES]) == 1
    state = State.reader(tmp_path / "out")
    top = {r.path: max(r.probabilities.values()) for r in state.records()}
    state.close()
    threshold = float(np.median(list(top.values())))
    tag_folder(classes_folder, tmp_path / "sure", session, threshold=threshold)
    for path, p in top.items():  # only a class that reaches the threshold is written
        written = [k for k in read_keywords((tmp_path / "sure" / path).read_bytes()) if k in CLASSES]
        assert len(written) == (p >= threshold)


def test_evaluate_reports_accuracy_per_class_figures_and_the_confusion_matrix(bundles, classes_folder):
    models, _ = bundles
    labels, _ = labels_from_folders(discover(classes_folder).photos)
    report = evaluate(TaggerSession(models / "one"), classes_folder, labels)
    assert report["single_label"] and report["n_images"] == 24
    assert np.array(report["confusion_matrix"]).sum() == 24
    assert {"accuracy", "baseline_accuracy", "macro_f1", "baseline_macro_f1"} <= set(report["overall"])
    assert set(report["tags"]) == set(CLASSES)


def test_class_figures_by_hand():
    vocabulary = ["a", "b", "c"]
    truth = np.eye(3, dtype=bool)[[0, 0, 0, 1, 2]]
    scores = np.array([[.8, .1, .1], [.6, .3, .1], [.2, .7, .1], [.1, .8, .1], [.4, .3, .3]])
    report = evaluate_classes(truth, scores, np.zeros(3), vocabulary)
    assert report["overall"]["accuracy"] == pytest.approx(3 / 5)
    assert report["overall"]["baseline_accuracy"] == pytest.approx(3 / 5) and report["overall"]["baseline_class"] == "a"
    a = report["tags"]["a"]
    assert (a["tp"], a["fp"], a["fn"]) == (2, 1, 1) and a["f1"] == pytest.approx(2 / 3)
    assert a["baseline_f1"] == pytest.approx(2 * 0.6 / 1.6) and report["tags"]["b"]["baseline_f1"] == 0
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 0], [1, 0, 0]]
    sure = evaluate_classes(truth, scores, np.full(3, 0.65), vocabulary)  # below its threshold: no class
    assert sure["overall"]["no_class"] == 2 and sure["overall"]["accuracy"] == pytest.approx(2 / 5)


def test_decide_gives_the_top_class_of_a_single_label_bundle(bundles):
    models, _ = bundles
    bundle = Bundle(models / "one")
    assert bundle.single_label and not Bundle(ROOT / "models" / "terc-iss").single_label
    assert bundle.decide(np.array([0.2, 0.5, 0.3]), bundle.thresholds()) == ["dune"]
    assert bundle.decide(np.array([0.2, 0.5, 0.3]), bundle.thresholds(0.6)) == []


def test_bundled_models_are_found_by_name():
    assert find_bundle("terc-iss") == ROOT / "models" / "terc-iss"
    with pytest.raises(BundleError, match="no model 'nosuch'.*terc-iss"):
        find_bundle("nosuch")
    done = CliRunner().invoke(main, ["evaluate", "--model", "nosuch"])
    assert done.exit_code == 2 and "no model 'nosuch'" in done.output


def test_the_default_models_identity_is_the_one_archives_were_tagged_with():
    """Archives key their runs on it: a change re-tags all of them (retraining terc-iss must change this on purpose)."""
    identities = {backend: Bundle(ROOT / "models" / "terc-iss", backend).model_id
                  for backend in ("tf", "openvino-bf16")}
    assert identities == {"tf": "87852e5209937263", "openvino-bf16": "2afb1faeb2f946f2"}  # as 0.3 computed them
