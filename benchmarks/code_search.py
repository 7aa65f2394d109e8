"""Searching a million 64-bit codes: terc-tag's NumPy scan against faiss's binary index (issue #12).

    pip install faiss-cpu   # optional: without it only the NumPy scan is timed
    python benchmarks/code_search.py [--photos 1000000] [--queries 200] [--k 20]
    python benchmarks/code_search.py --index tagged [--model models/terc-iss]

Random codes by default (no structure to exploit).  With ``--index`` the
codes of a real tagged OUTPUT instead: first that index as it is, searched
the way ``terc-tag similar`` does (``SimilarIndex``, loading included), then
its codes repeated to ``--photos`` with 2% of the bits flipped, so that the
million codes cluster as real photos do (many photos at equal distances,
which the k-nearest count must handle).  Each query is timed alone, as the
command asks them; prints the median and 95th percentile per query, bytes
held per photo, and whether both searches return the same distances.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tagger.hamming import CodeIndex
from tagger.similar.index import SimilarIndex, find_similar


def real_codes(output: Path, model: Path | None, photos: int, rng) -> np.ndarray:
    """A tagged OUTPUT's codes, timed as they are, then repeated to ``photos`` with 2% of bits flipped."""
    from tagger.bundle import Bundle
    from tagger.cli.common import default_model

    started = time.perf_counter()
    index = SimilarIndex(output, Bundle(model or default_model()))
    loaded = time.perf_counter() - started
    ms, _ = timed(lambda name: find_similar(index, [name], 20), index.paths)
    print(f"the index of {output}: {len(index):,} photos, loaded in {loaded * 1000:.0f} ms; `similar` on each of "
          f"its photos: median {np.median(ms):.2f} ms, 95th percentile {np.percentile(ms, 95):.2f} ms")
    base = index.codes.words[rng.integers(0, len(index), photos)]
    flips = np.packbits(rng.random((photos, 64)) < 0.02, axis=1, bitorder="little").view("<u8")
    return base ^ flips


def timed(search, queries) -> tuple[np.ndarray, list]:
    seconds, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(search(query))
        seconds.append(time.perf_counter() - started)
    return np.array(seconds) * 1000, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--index", type=Path, help="a tagged OUTPUT whose codes to use")
    parser.add_argument("--model", type=Path, help="the bundle that tagged --index (default: the bundled model)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.index:
        words, kind = real_codes(args.index, args.model, args.photos, rng), "real (repeated, 2% of bits flipped)"
    else:
        words, kind = rng.integers(0, 2**64, size=(args.photos, 1), dtype=np.uint64), "random"
    index = CodeIndex(words)
    queries = rng.integers(0, args.photos, args.queries)
    ours_ms, ours = timed(lambda q: index.nearest(words[q], args.k, exclude=q), queries)
    print(f"{args.photos:,} {kind} 64-bit codes, {args.queries} queries one at a time, k = {args.k}")
    print(f"NumPy scan (tagger.similar.index): median {np.median(ours_ms):.2f} ms, 95th percentile "
          f"{np.percentile(ours_ms, 95):.2f} ms; {index.words.nbytes / args.photos:.0f} bytes per photo")
    try:
        import faiss
    except ImportError:
        print("faiss-cpu is not installed: pip install faiss-cpu to compare")
        return
    faiss.omp_set_num_threads(1)  # one query at a time, as the command asks them
    flat = faiss.IndexBinaryFlat(64)
    as_bytes = words.view(np.uint8)
    flat.add(as_bytes)
    faiss_ms, theirs = timed(lambda q: flat.search(as_bytes[q:q + 1], args.k + 1), queries)
    def without_query(q, found):  # faiss finds the query itself too
        distances, indices = found
        return distances[0][indices[0] != q][:args.k]

    same = sum(np.array_equal(d, without_query(q, found))
               for q, (_, d), found in zip(queries, ours, theirs, strict=False))
    print(f"faiss IndexBinaryFlat:       median {np.median(faiss_ms):.2f} ms, 95th percentile "
          f"{np.percentile(faiss_ms, 95):.2f} ms; {flat.xb.size() / args.photos:.0f} bytes per photo")
    print(f"same distances for {same} of {args.queries} queries; NumPy / faiss median time "
          f"{np.median(ours_ms) / np.median(faiss_ms):.2f}")


if __name__ == "__main__":
    main()
