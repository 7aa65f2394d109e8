"""Similar photos: the Hamming search over packed binary codes."""

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DEFAULT_MODEL, ISS, downgrade_state

from tagger.bundle import Bundle
from tagger.cli import main
from tagger.decode import decode_photo
from tagger.hamming import CodeIndex, pack
from tagger.similar.codes import encode
from tagger.similar.index import SimilarIndex, find_similar
from tagger.state import SCHEMA_VERSION, State
from tagger.tagging.pipeline import tag_folder


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


# --- An OUTPUT's index and `terc-tag similar` (the default model's code map) ---


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, session_module):
    """The six ISS fixture photos tagged once, with codes."""
    out = tmp_path_factory.mktemp("similar") / "tagged"
    tag_folder(ISS, out, session_module)
    return out


@pytest.fixture(scope="module")
def session_module():
    from tagger.model import TaggerSession

    return TaggerSession(DEFAULT_MODEL)


def stored_codes(out: Path) -> dict[str, bytes]:
    state = State.reader(out)
    try:
        return {r.path: r.code for r in state.records()}
    finally:
        state.close()


def user_version(out: Path) -> int:
    db = sqlite3.connect(out / ".terc-tag" / "state.sqlite")
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def test_tagging_stores_the_code_of_the_same_forward_pass(tagged, session_module):
    codes = stored_codes(tagged)
    assert len(codes) == 6 and all(len(c) == 8 for c in codes.values())
    arrays = np.load(DEFAULT_MODEL / "codes.npz")  # an independent route: features, then the map in numpy
    names = sorted(codes)
    pixels = np.stack([decode_photo((ISS / n).read_bytes(), session_module.size) for n in names])
    expected = encode(session_module.features(pixels), arrays["codes/0"], arrays["codes/1"])
    got = np.frombuffer(b"".join(codes[n] for n in names), "<u8").reshape(6, 1)
    differing = np.bitwise_count(got ^ expected).sum()
    assert differing <= 2  # the traced graph and keras' predict may differ in a bit sitting at 0


def test_a_photo_of_the_index_is_answered_from_its_code_and_never_finds_itself(tagged, session_module,
                                                                                 monkeypatch):
    index = SimilarIndex(tagged, Bundle(DEFAULT_MODEL))
    monkeypatch.setattr("tagger.sessions.load_session", lambda bundle: pytest.fail("the model was loaded"))
    name = index.paths[2]
    by_path, by_relative = find_similar(index, [str(tagged / name), name], k=3)
    assert [m.path for m in by_path.results] == [m.path for m in by_relative.results]
    assert len(by_path.results) == 3 and name not in [m.path for m in by_path.results]
    distances = [m.distance for m in by_path.results]
    assert distances == sorted(distances)
    assert all(m.tags == index.tags[index.paths.index(m.path)] for m in by_path.results)


def test_cli_answers_files_and_index_photos_with_json_and_a_contact_sheet(tagged, tmp_path):
    original = ISS / "iss052e033191.jpg"  # outside OUTPUT: decoded and coded on the fly
    report, sheet = tmp_path / "similar.json", tmp_path / "similar.html"
    result = run("similar", tagged, original, "iss052e033191.jpg", "-k", 4, "--json", report, "--html", sheet)
    assert result.exit_code == 0, result.output
    queries = json.loads(report.read_text())["queries"]
    assert [q["query"] for q in queries] == [str(original), "iss052e033191.jpg"]
    from_file, from_index = queries
    assert set(from_file["results"][0]) == {"path", "distance", "tags"}
    assert "iss052e033191.jpg" not in [r["path"] for r in from_file["results"]]  # nor its own tagged copy
    elsewhere = tmp_path / "iss052e033191.jpg"  # the same name with other pixels is another photo
    elsewhere.write_bytes((ISS / "iss038e040838.jpg").read_bytes())
    assert run("similar", tagged, elsewhere, "--json", report, "-q").exit_code == 0
    duplicate = json.loads(report.read_text())["queries"][0]["results"]
    assert duplicate[0]["path"] == "iss038e040838.jpg" and duplicate[0]["distance"] <= 2  # a near-duplicate: first
    assert "iss052e033191.jpg" in [r["path"] for r in duplicate]
    assert "iss052e033191.jpg" not in [r["path"] for r in from_index["results"]]
    assert len(from_index["results"]) == 4
    html = sheet.read_text()
    assert html.count("<img src=\"data:image/jpeg;base64,") == 2 * 5 and "Like iss052e033191.jpg" in html
    assert "iss052e033191.jpg" in result.output  # the table


def test_output_comes_first_and_index_is_a_deprecated_alias(tagged, tmp_path):
    """`similar OUTPUT PHOTO...`, OUTPUT first as for `tag` and `review`; `PHOTO... --index OUTPUT` answers the same
    with a warning (none under -q); OUTPUT given both ways, or no photo, is one line and exit 2."""
    positional, alias = tmp_path / "positional.json", tmp_path / "alias.json"
    first = run("similar", tagged, "iss052e033191.jpg", "iss038e040838.jpg", "--json", positional)
    assert first.exit_code == 0 and "deprecated" not in first.output, first.output
    old = run("similar", "iss052e033191.jpg", "iss038e040838.jpg", "--index", tagged, "--json", alias)
    assert old.exit_code == 0 and "terc-tag: warning: --index is deprecated" in old.output, old.output
    assert json.loads(alias.read_text()) == json.loads(positional.read_text())
    assert len(json.loads(alias.read_text())["queries"]) == 2
    quiet = run("similar", "iss052e033191.jpg", "--index", tagged, "-q")
    assert quiet.exit_code == 0 and quiet.output == ""

    both = run("similar", tagged, "iss052e033191.jpg", "--index", tagged)
    assert both.exit_code == 2 and "OUTPUT given twice" in both.output and len(both.output.splitlines()) == 1
    for args, says in (([tagged], "at least one PHOTO"), (["--index", tagged], "at least one PHOTO"),
                       ([ISS / "iss052e033191.jpg", tagged], "OUTPUT folder comes first")):
        result = run("similar", *args)
        assert result.exit_code == 2 and says in result.output and len(result.output.splitlines()) == 1, result.output


def test_photos_without_a_code_are_left_out_with_a_note_that_quiet_silences(tagged, tmp_path):
    out = tmp_path / "tagged"
    shutil.copytree(tagged, out)
    db = sqlite3.connect(out / ".terc-tag" / "state.sqlite")
    with db:
        db.execute("UPDATE photos SET code = NULL, code_key = NULL WHERE path = 'iss038e040838.jpg'")
    db.close()
    loud = run("similar", out, "iss052e033191.jpg", "--json", tmp_path / "similar.json")
    assert loud.exit_code == 0 and "1 tagged photos of" in loud.output and "not searched" in loud.output
    assert len(json.loads((tmp_path / "similar.json").read_text())["queries"][0]["results"]) == 4
    quiet = run("similar", out, "iss052e033191.jpg", "-q")  # -q: nothing but errors; a note is none
    assert quiet.exit_code == 0 and quiet.output == "", quiet.output


def test_an_unreadable_query_is_one_line_and_exit_1_the_others_are_answered(tagged, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    report = tmp_path / "similar.json"
    result = run("similar", tagged, tmp_path / "missing.jpg", broken, "iss052e033191.jpg", "--json", report, "-q")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("terc-tag:")]
    assert len(errors) == 2 and "missing.jpg: cannot read" in errors[0] and "broken.jpg" in errors[1]
    answered = json.loads(report.read_text())["queries"]
    assert [bool(q["results"]) for q in answered] == [False, False, True] and "error" in answered[1]


def test_an_output_without_an_index_or_with_codes_of_another_model_is_exit_2(tagged, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    result = run("similar", plain, ISS / "iss052e033191.jpg")
    assert result.exit_code == 2 and "not a tagged OUTPUT" in result.output and len(result.output.splitlines()) == 1
    (plain / ".terc-tag").mkdir()
    (plain / ".terc-tag" / "state.sqlite").write_bytes(b"not a database, not at all" * 100)
    result = run("similar", plain, ISS / "iss052e033191.jpg")
    assert result.exit_code == 2 and "cannot read the state" in result.output and len(result.output.splitlines()) == 1

    other = tmp_path / "other-model"
    shutil.copytree(DEFAULT_MODEL, other)
    card = json.loads((other / "codes.json").read_text())
    (other / "codes.json").write_text(json.dumps({**card, "method": "another map"}))
    result = run("similar", tagged, "iss052e033191.jpg", "--model", other)
    assert result.exit_code == 2 and "come from another model" in result.output

    no_codes = tmp_path / "no-codes"
    shutil.copytree(DEFAULT_MODEL, no_codes, ignore=shutil.ignore_patterns("codes.*"))
    result = run("similar", tagged, "iss052e033191.jpg", "--model", no_codes)
    assert result.exit_code == 2 and "has no code map" in result.output


def test_an_output_tagged_before_codes_keeps_its_tags_and_gets_codes_on_request(tmp_path, session_module):
    """A 0.2 OUTPUT (schema 2, no codes): nothing is re-tagged; --add-codes codes it without rewriting a photo."""
    out = tmp_path / "tagged"
    tag_folder(ISS, out, session_module)
    downgrade_state(out, 2)  # what terc-tag 0.2 left: no code columns
    copies = {p.name: p.stat().st_mtime_ns for p in out.glob("*.jpg")}

    result = run("similar", out, "iss052e033191.jpg")
    assert result.exit_code == 2 and "--add-codes" in result.output

    again = run("tag", ISS, out, "--backend", "tf")
    assert again.exit_code == 0 and "0 photos tagged" in again.output and "6 already done" in again.output
    assert "6 photos tagged before have no similarity code" in again.output
    assert user_version(out) == 2  # a run with nothing to do writes nothing, the state's schema included

    added = run("tag", ISS, out, "--backend", "tf", "--add-codes")
    assert added.exit_code == 0 and "6 photos tagged before got their similarity code" in added.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.jpg")} == copies  # no photo rewritten
    assert all(len(code) == 8 for code in stored_codes(out).values()) and user_version(out) == SCHEMA_VERSION
    assert run("similar", out, "iss052e033191.jpg", "-q").exit_code == 0
    quiet = run("tag", ISS, out, "--backend", "tf", "--add-codes")
    assert "0 photos tagged" in quiet.output and "similarity code" not in quiet.output
