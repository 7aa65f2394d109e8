"""Similarity codes: fitting the map from features to bits, and measuring retrieval."""

import numpy as np
import pytest

from tagger.hamming import CodeIndex, pack
from tagger.similar.codes import encode, fit_code_map, fit_itq, pair_targets, retrieval_metrics, scene_ids


def clustered(seed=0, scenes=24, frames=5, dims=96):
    """Features of ``scenes`` scenes (frames near each other), each scene with one of 3 tags."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(scenes, dims))
    tag_direction = rng.normal(size=(3, dims)) * 1.5
    tag_of = np.arange(scenes) % 3
    z = np.concatenate([centres[s] + tag_direction[tag_of[s]] + 0.15 * rng.normal(size=(frames, dims))
                        for s in range(scenes)])
    y = np.eye(3)[np.repeat(tag_of, frames)]
    names = [f"iss0{s:02d}e{1000 * s + f:06d}.jpg" for s in range(scenes) for f in range(frames)]
    return z.astype(np.float32), y.astype(np.float32), names


def test_scene_ids_group_frames_of_a_sequence():
    ids = scene_ids(["iss052e000010.jpg", "iss052e000025.jpg", "iss052e000100.jpg", "iss053e000011.jpg"])
    assert ids[0] == ids[1] and len({ids[1], ids[2], ids[3]}) == 3


def test_pair_targets_put_frames_of_a_scene_nearest_then_shared_tags():
    y = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], np.float32)
    target = pair_targets(y, np.array([0, 0, 1, 2]))
    assert target[0, 1] == pytest.approx(0.9)  # same scene
    assert target[0, 2] == pytest.approx(0.5)  # same tags, another scene
    assert target[0, 3] == pytest.approx(-0.5)  # nothing shared


def test_learned_codes_keep_scenes_nearest_and_tags_near():
    z, y, names = clustered()
    kernel, bias, method = fit_code_map(z, y, names, bits=64)
    assert method == "learned" and kernel.shape == (96, 64) and bias.shape == (64,)
    words = encode(z, kernel, bias)
    metrics = retrieval_metrics(words, y, names)
    assert metrics["same_sequence_at_5"] > 0.95 and metrics["map_at_64"] > 0.9
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")
    assert np.abs(bits.mean(axis=0) - 0.5).max() < 0.35  # no bit stuck on or off


def test_without_tags_the_fallback_is_pca_itq_with_balanced_bits():
    z, _, names = clustered(seed=1)
    kernel, bias, method = fit_code_map(z, None, names, bits=64)
    assert method == "pca-itq"
    words = encode(z, kernel, bias)
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little").astype(float)
    assert np.abs(bits.mean(axis=0) - 0.5).mean() < 0.15  # centred projections: bits near balanced
    assert retrieval_metrics(words, None, names)["same_sequence_at_5"] > 0.9
    with pytest.raises(ValueError, match="at least 64 photos and features"):
        fit_itq(z[:10], 64)
    with pytest.raises(ValueError, match="multiple of 64"):
        fit_code_map(z, None, names, bits=48)


def test_retrieval_metrics_by_hand():
    """Four photos: a and b share a tag and a code; c and d share neither."""
    bits = np.zeros((4, 64), bool)
    bits[2, :10] = True
    bits[3, 10:30] = True
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], bool)
    metrics = retrieval_metrics(pack(bits), y, ["x1.jpg", "x2.jpg", "y100.jpg", "z7.jpg"])
    # a: nearest b (relevant) -> AP 1; b likewise; c: order a, b, d, none relevant -> AP 0; d has no tag: no query
    assert metrics["map_at_64"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["precision_at_10"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3, abs=1e-4)
    assert metrics["same_sequence_at_5"] == 1.0 and metrics["queries_with_sequence_mate"] == 2


def test_encode_matches_the_code_index_layout():
    z, y, names = clustered(seed=2)
    kernel, bias, _ = fit_code_map(z, y, names)
    words = encode(z, kernel, bias)
    unpacked = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little").astype(bool)
    assert np.array_equal(unpacked, z @ kernel + bias > 0)
    assert CodeIndex(words).bits == 64


def test_fit_codes_gives_an_existing_bundle_a_new_code_map_and_keeps_its_tag_identity(tmp_path):
    import json
    import shutil

    from click.testing import CliRunner
    from conftest import DEFAULT_MODEL, ISS

    from tagger.bundle import Bundle
    from tagger.cli import main

    bundle = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, bundle)
    before = Bundle(bundle)
    photos = tmp_path / "photos"
    shutil.copytree(ISS, photos)
    (photos / "broken.jpg").write_bytes(b"not a photo")
    result = CliRunner().invoke(main, ["fit-codes", str(photos), "--model", str(bundle), "-q"])
    # -q: nothing but errors, and the photo that cannot be read is one
    assert result.exit_code == 0 and result.output.startswith("terc-tag: skipping broken.jpg: "), result.output
    assert len(result.output.splitlines()) == 1, result.output
    after = Bundle(bundle)
    assert after.model_id == before.model_id and after.codes_id != before.codes_id  # tags untouched, codes new
    card = json.loads((bundle / "codes.json").read_text())
    assert card["fit_on"]["labelled"] and card["fit_on"]["photos"] + card["metrics"]["test"]["photos"] == 6

    unsupervised = CliRunner().invoke(main, ["fit-codes", str(ISS), "--model", str(bundle), "--unsupervised"])
    assert unsupervised.exit_code == 2 and "at least 64 photos" in unsupervised.output
