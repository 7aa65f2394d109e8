"""The typed model card: one validation, every earlier card read and written back unchanged."""

import json
import shutil
from pathlib import Path

import pytest

from tagger.bundle import Bundle, BundleError
from tagger.card import ModelCard, head_config
from tagger.train.config import TrainConfig, TrainError

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "models").glob("*/model.json"))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.parent.name)
def test_the_shipped_cards_write_back_byte_for_byte(path):
    text = path.read_text()
    card = ModelCard.from_json(text)
    assert card.to_json() == text
    assert dict(card) == json.loads(text)  # the mapping view is the JSON document


def test_an_earlier_card_keeps_its_sections_and_a_later_one_its_unknown_fields(tmp_path):
    """A card before ``inputs``/``thresholds``/``split`` (``head`` a string), and one with a field from the future."""
    older = {"format": "terc-tag model bundle, version 1", "vocabulary": ["a", "b"], "input_size": 224,
             "backbone": {"feature_layer": "conv4_block6_out"}, "head": "average pooling, dense sigmoid"}
    card = ModelCard.from_json(json.dumps(older, indent=1))
    assert card.to_dict() == older and list(card.to_dict()) == list(older)
    assert not card.camera and not card.single_label and card.default_threshold == 0.5
    assert card.split_photos("test") == set()
    assert head_config(card) == {"pooling": "average", "label_sets": None, "activation": "sigmoid"}
    later = {"vocabulary": ["a"], "provenance_chain": [1, 2], "input_size": 64,
             "backbone": {"feature_layer": "conv4_block6_out"}, "head": {"pooling": "gem", "activation": "softmax"}}
    card = ModelCard.from_json(json.dumps(later, indent=1))
    assert card.extra == {"provenance_chain": [1, 2]} and card.single_label
    assert card.to_json() == json.dumps(later, indent=1)  # in its place, not moved to the end


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(vocabulary=["a", "A"]), "names a tag twice"),
    (lambda c: c.update(vocabulary=[]), "non-empty list"),
    (lambda c: c.pop("input_size"), "input_size"),
    (lambda c: c.update(inputs={"rgb": None, "depth": None}), "inputs must name rgb"),
    (lambda c: c["head"].update(activation="relu"), "unknown head activation"),
    (lambda c: c["backbone"].pop("feature_layer"), "feature_layer"),
])
def test_a_malformed_card_is_one_bundle_error(tmp_path, change, message):
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "models" / "hirise", bundle)
    card = json.loads((bundle / "model.json").read_text())
    change(card)
    (bundle / "model.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match=message) as caught:
        Bundle(bundle)
    assert "\n" not in str(caught.value)


def test_a_card_not_yet_written_names_the_bundle_by_its_json(tmp_path):
    """Training measures its bundle through a card in memory; the identity is that of the card once written."""
    shutil.copytree(ROOT / "models", tmp_path / "models")  # with the backbone the bundle shares
    bundle = tmp_path / "models" / "hirise"
    written = Bundle(bundle)
    (bundle / "model.json").unlink()
    in_memory = Bundle(bundle, card=written.card)
    assert in_memory.model_id == written.model_id and in_memory.vocabulary == written.vocabulary


@pytest.mark.parametrize("settings, message", [
    ({"camera": True, "fine_tune_blocks": 1}, "frozen head only"),
    ({"head": "tanh"}, "head 'tanh'"),
    ({"pooling": "max"}, "pooling 'max'"),
    ({"views": 9}, "1 to 8 dihedral views"),
    ({"code_bits": 100}, "multiple of 64"),
    ({"c_values": ()}, "at least one C"),
])
def test_train_config_refuses_bad_settings_before_any_work(tmp_path, settings, message):
    with pytest.raises(TrainError, match=message):
        TrainConfig(tmp_path, tmp_path / "m", **settings)
    with pytest.raises(TrainError, match="is not a folder"):
        TrainConfig(tmp_path / "missing", tmp_path / "m")
    assert TrainConfig(tmp_path, tmp_path / "m", fine_tune_blocks=1).refits is False
