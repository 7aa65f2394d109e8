"""Find similar photos by their binary codes: Hamming distance over packed 64-bit words.

:class:`SimilarIndex` is a tagged OUTPUT's codes (from its state), and
:func:`find_similar` answers queries against it: a photo of the index by its
stored code, any other photo by decoding and coding it with the bundle that
made the index (one model load for all of them).

Codes are held as ``uint64`` words, ``bits / 64`` per photo (8 bytes for the
default 64-bit code), searched by :class:`tagger.hamming.CodeIndex`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tagger.discover import is_within
from tagger.errors import TercTagError
from tagger.hamming import CodeIndex
from tagger.names import shown

if TYPE_CHECKING:
    from tagger.bundle import Bundle


class SimilarIndexError(TercTagError):
    """OUTPUT cannot be searched with this model; the message says why in one line."""


@dataclass
class Match:
    path: str  # relative to OUTPUT
    distance: int
    tags: list[str]


@dataclass
class Answer:
    query: str  # as given
    results: list[Match] = field(default_factory=list)
    error: str | None = None  # why the query could not be answered

    def as_dict(self) -> dict:
        """For JSON: names as :func:`tagger.names.shown` gives them (valid UTF-8; ``unshown`` gives them back)."""
        answer = {"query": shown(self.query),
                  "results": [{**m.__dict__, "path": shown(m.path)} for m in self.results]}
        return answer if self.error is None else {**answer, "error": shown(self.error)}


class SimilarIndex:
    """The similarity codes of a tagged OUTPUT made by one bundle's code map."""

    def __init__(self, output: str | os.PathLike, bundle: Bundle) -> None:
        """Read OUTPUT's state; :class:`SimilarIndexError` when it has no codes of ``bundle``'s code map."""
        import sqlite3

        from tagger.state import State

        self.output, self.bundle = Path(output), bundle
        if bundle.codes_id is None:
            raise SimilarIndexError(f"model {bundle.path} has no code map; fit one with "
                                    f"`terc-tag fit-codes DIR --model {bundle.path}`")
        try:
            with State.reading(self.output) as state:
                if state is None:
                    raise SimilarIndexError(f"{self.output} is not a tagged OUTPUT (no .terc-tag/state.sqlite); "
                                            "run `terc-tag tag INPUT OUTPUT` first")
                keys = state.code_keys()
                self.paths, self.tags, codes = state.codes(bundle.codes_id) if keys.get(bundle.codes_id) else (
                    [], [], [])
        except sqlite3.DatabaseError as exc:
            raise SimilarIndexError(f"cannot read the state of {self.output}: {exc}") from None
        if not self.paths:
            others = sum(n for key, n in keys.items() if key is not None)
            raise SimilarIndexError(
                f"the codes in {self.output} come from another model than {bundle.path}; pass the --model that "
                "tagged it" if others else
                f"the photos of {self.output} have no similarity codes yet; run `terc-tag tag INPUT OUTPUT "
                "--add-codes`")
        #: Tagged photos not searched: no code, or a code of another map.
        self.left_out = sum(keys.values()) - len(self.paths)
        self.codes = CodeIndex(np.frombuffer(b"".join(codes), "<u8").reshape(len(codes), -1))
        self._position = {path: i for i, path in enumerate(self.paths)}
        self._by_name: dict[str, list[int]] = {}
        for i, path in enumerate(self.paths):
            self._by_name.setdefault(path.rsplit("/", 1)[-1], []).append(i)

    def __len__(self) -> int:
        return len(self.paths)

    def find(self, query: str) -> int | None:
        """The index position of a query that names a photo of the index (a path in OUTPUT, or relative to it)."""
        path = Path(query)
        if path.exists():
            resolved, output = str(path.resolve()), str(self.output.resolve())
            return self._position.get(Path(os.path.relpath(resolved, output)).as_posix()) \
                if is_within(resolved, output) else None
        return self._position.get(path.as_posix())

    def own_copy(self, query: str, words: np.ndarray) -> int | None:
        """The tagged copy of a query from outside OUTPUT (its original in INPUT, say): same name, code within 3 bits.

        Three bits allow for a backend other than the one that tagged it: on 200 ISS photos, OpenVINO
        bfloat16 and TensorFlow codes differed in at most 3 bits.
        """
        same_name = self._by_name.get(Path(query).name, [])
        distances = [int(np.bitwise_count(self.codes.words[i] ^ words).sum()) for i in same_name]
        return same_name[int(np.argmin(distances))] if distances and min(distances) <= 3 else None

    def nearest(self, words: np.ndarray, k: int, exclude: int | None = None) -> list[Match]:
        indices, distances = self.codes.nearest(words, k, exclude)
        return [Match(self.paths[i], int(d), self.tags[i]) for i, d in zip(indices, distances, strict=True)]


def find_similar(index: SimilarIndex, queries: Iterable[str | os.PathLike], k: int = 20,
                 batch_size: int = 32) -> list[Answer]:
    """The ``k`` nearest photos of ``index`` for each query, in order; a query that cannot be read has an error.

    The model is loaded only when some query is not a photo of the index.
    """
    from tagger.decode import Decoded, DecodeError, batched, decode
    from tagger.sessions import load_session, predict_decoded

    answers = [Answer(str(q)) for q in queries]
    to_code = []
    for answer in answers:
        position = index.find(answer.query)
        if position is not None:
            answer.results = index.nearest(index.codes.words[position], k, exclude=position)
            continue
        try:
            with open(answer.query, "rb") as file:
                to_code.append((answer, file.read()))
        except OSError as exc:
            answer.error = f"cannot read: {exc.strerror or exc}"
    if not to_code:
        return answers
    session = load_session(index.bundle)
    for batch in batched(to_code, batch_size):
        decoded = []
        for answer, data in batch:
            try:
                pixels, camera = decode(data, session.size)
            except DecodeError as exc:
                answer.error = str(exc)
                continue
            decoded.append((answer, Decoded(Path(answer.query), None, pixels, camera=camera)))
        if decoded:
            _, words = predict_decoded(session, [photo for _, photo in decoded])
            assert words is not None, "an index is made of a bundle with a code map"
            for (answer, _), code in zip(decoded, words, strict=True):
                answer.results = index.nearest(code, k, exclude=index.own_copy(answer.query, code))
    return answers
