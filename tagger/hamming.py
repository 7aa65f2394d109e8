"""Binary codes as packed ``uint64`` words, and the nearest codes by Hamming distance.

The format every part shares (the model's code layer, the code maps' fits,
the state's stored codes, the similarity search); kept below them all, so
that the sessions that make codes (:mod:`tagger.inference`) and the search
(:mod:`tagger.similar`) need not import each other.

A query is one pass of XOR and popcount over the words.  Distances take
only ``bits + 1`` values, so the k nearest are found by counting (how far
out the k-th lies) and one more pass, not by sorting a million distances.
``benchmarks/code_search.py`` measures this against faiss's binary index.
"""

from __future__ import annotations

import numpy as np


def pack(bits: np.ndarray) -> np.ndarray:
    """``(n, b)`` 0/1 bits, b a multiple of 64, as ``(n, b / 64)`` uint64 words (bit i of word j is bit 64j + i)."""
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 2 or bits.shape[1] % 64:
        raise ValueError(f"codes must be (photos, a multiple of 64 bits), not {bits.shape}")
    return np.packbits(bits, axis=1, bitorder="little").view("<u8")


class CodeIndex:
    """Codes of an archive's photos, searchable by Hamming distance."""

    def __init__(self, words: np.ndarray):
        """``words``: ``(photos, words per code)`` uint64, as :func:`pack` gives."""
        self.words = np.ascontiguousarray(words, dtype=np.uint64)
        if self.words.ndim != 2:
            raise ValueError(f"codes must be (photos, words per code), not {self.words.shape}")
        self.bits = 64 * self.words.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def distances(self, query: np.ndarray) -> np.ndarray:
        """Hamming distance from ``query`` (one photo's words) to every photo, as uint8."""
        different = np.bitwise_xor(self.words, np.asarray(query, dtype=np.uint64).reshape(1, -1))
        counts = np.bitwise_count(different)
        return (counts[:, 0] if counts.shape[1] == 1 else counts.sum(axis=1, dtype=np.uint16)).astype(np.uint8)

    def nearest(self, query: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest photos (indices, distances), nearest first, ties in index order.

        ``exclude`` leaves one photo out: a query that is itself in the index.
        """
        distance = self.distances(query)
        if exclude is not None:
            distance[exclude] = self.bits + 1  # only a distance no code can have
        counts = np.bincount(distance, minlength=self.bits + 2)[: self.bits + 1]
        k = min(k, int(counts.sum()))
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.uint8)
        radius = int(np.searchsorted(np.cumsum(counts), k))  # the k-th nearest lies at this distance
        candidates = np.flatnonzero(distance <= radius)
        order = np.lexsort((candidates, distance[candidates]))[:k]
        return candidates[order], distance[candidates[order]]
