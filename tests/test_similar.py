"""Similar photos: the Hamming search over packed binary codes."""

import numpy as np
import pytest

from tagger.similar import CodeIndex, pack


def brute_force(bits: np.ndarray, query: int, k: int, exclude: bool):
    """The k nearest by an independent route: unpacked bits, a full stable sort."""
    distance = (bits != bits[query]).sum(axis=1)
    order = [i for i in np.argsort(distance, kind="stable") if not (exclude and i == query)][:k]
    return np.array(order), distance[order]


@pytest.mark.parametrize("n_bits", [64, 128])
@pytest.mark.parametrize("exclude", [False, True])
def test_nearest_matches_a_full_sort_ties_in_index_order(n_bits, exclude):
    rng = np.random.default_rng(n_bits)
    bits = rng.random((3000, n_bits)) < 0.03  # sparse codes: many photos at equal distances
    index = CodeIndex(pack(bits))
    assert len(index) == 3000 and index.bits == n_bits and index.words.nbytes == 3000 * n_bits // 8
    for query in (0, 17, 2999):
        for k in (1, 5, 20, 500):
            got = index.nearest(index.words[query], k, exclude=query if exclude else None)
            want = brute_force(bits, query, k, exclude)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (query, k)


def test_k_beyond_the_archive_and_an_empty_archive():
    bits = np.eye(64, dtype=bool)[:3]
    index = CodeIndex(pack(bits))
    indices, distances = index.nearest(index.words[0], 10, exclude=0)
    assert list(indices) == [1, 2] and list(distances) == [2, 2]
    empty = CodeIndex(np.zeros((0, 1), np.uint64))
    assert len(empty.nearest(np.zeros(1, np.uint64), 5)[0]) == 0


def test_pack_keeps_every_bit_and_refuses_ragged_codes():
    bits = np.random.default_rng(0).random((5, 128)) < 0.5
    words = pack(bits)
    assert words.dtype == np.uint64 and words.shape == (5, 2)
    assert np.array_equal(np.unpackbits(words.view(np.uint8), axis=1, bitorder="little").astype(bool), bits)
    with pytest.raises(ValueError, match="multiple of 64"):
        pack(np.zeros((2, 48), bool))
