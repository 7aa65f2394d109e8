"""Searching a million 64-bit codes: terc-tag's NumPy scan against faiss's binary index (issue #12).

    pip install faiss-cpu   # optional: without it only the NumPy scan is timed
    python benchmarks/code_search.py [--photos 1000000] [--queries 200] [--k 20]

Random codes (the worst case for a search: no structure to exploit), each
query timed alone, as ``terc-tag similar`` asks them; prints the median and
95th percentile per query, bytes held per photo, and whether both searches
return the same distances.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tagger.similar import CodeIndex


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
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**64, size=(args.photos, 1), dtype=np.uint64)
    index = CodeIndex(words)
    queries = rng.integers(0, args.photos, args.queries)
    ours_ms, ours = timed(lambda q: index.nearest(words[q], args.k, exclude=q), queries)
    print(f"{args.photos:,} random 64-bit codes, {args.queries} queries one at a time, k = {args.k}")
    print(f"NumPy scan (tagger.similar): median {np.median(ours_ms):.2f} ms, 95th percentile "
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

    same = sum(np.array_equal(d, without_query(q, found)) for q, (_, d), found in zip(queries, ours, theirs))
    print(f"faiss IndexBinaryFlat:       median {np.median(faiss_ms):.2f} ms, 95th percentile "
          f"{np.percentile(faiss_ms, 95):.2f} ms; {flat.xb.size() / args.photos:.0f} bytes per photo")
    print(f"same distances for {same} of {args.queries} queries; NumPy / faiss median time "
          f"{np.median(ours_ms) / np.median(faiss_ms):.2f}")


if __name__ == "__main__":
    main()
