"""The install without TensorFlow: tag, similar, evaluate, explain and review's heat maps run with it unimportable.

Each run is a subprocess whose PYTHONPATH starts with ``tests/no_tensorflow``,
whose ``sitecustomize`` makes ``import tensorflow`` and ``import keras`` fail,
as on ``pip install terc-tag`` without the ``train`` extra.
"""

import csv
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, ISS, ROOT

from tagger.cli import main

pytest.importorskip("openvino")
BLOCKER = ROOT / "tests" / "no_tensorflow"


def blocked(*args, block="tensorflow,keras", code=None) -> subprocess.CompletedProcess:
    """``terc-tag ARGS`` (or ``python -c CODE``) in a process where the packages named in ``block`` fail to import."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BLOCKER), str(ROOT)]), "TERC_TAG_TEST_BLOCK": block}
    command = ["-c", code] if code else ["-m", "tagger", *map(str, args)]
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env, timeout=600)


def tags(output) -> dict[str, str]:
    with open(output / "predictions.csv", newline="", encoding="utf-8") as file:
        return {row["file"]: row["tags"] for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """ISS photos tagged without TensorFlow (default backend), then once more with one new photo."""
    base = tmp_path_factory.mktemp("no-tf")
    shutil.copytree(ISS, base / "in")
    first = blocked("tag", base / "in", base / "out")
    assert first.returncode == 0, first.stderr
    shutil.copy(EXAMPLES / "iss037e017572.jpg", base / "in" / "new.jpg")
    second = blocked("tag", base / "in", base / "out")
    assert second.returncode == 0, second.stderr
    assert "1 photos tagged" in second.stdout
    return base


def test_tag_without_tensorflow_gives_the_tensorflow_paths_tags(tagged):
    pytest.importorskip("tensorflow")  # the install with terc-tag[train] compares; the one without only tags
    result = CliRunner().invoke(main, ["tag", str(tagged / "in"), str(tagged / "tf"), "--backend", "tf"])
    assert result.exit_code == 0, result.output
    assert tags(tagged / "out") == tags(tagged / "tf") and len(tags(tagged / "tf")) == 7
    assert "Moon" in tags(tagged / "out")["new.jpg"]


def test_similar_evaluate_explain_and_heat_maps_without_tensorflow(tagged, tmp_path):
    similar = blocked("similar", tagged / "out", tagged / "in" / "new.jpg", "-k", "3")
    assert similar.returncode == 0, similar.stderr
    evaluate = blocked("evaluate", ISS)
    assert evaluate.returncode == 0, evaluate.stderr
    explain = blocked("explain", EXAMPLES / "iss037e017572.jpg", "--out", tmp_path / "maps")
    assert explain.returncode == 0, explain.stderr
    assert (tmp_path / "maps" / "iss037e017572" / "Moon.png").is_file()
    heat = blocked(code=f"from tagger.review.app import Review; from tagger.cli.common import open_bundle;"
                        f"png = Review({str(tagged / 'out')!r}, open_bundle(None)).heat_map('new.jpg', 'Moon');"
                        f"print(png[:4] == b'\\x89PNG')")
    assert heat.returncode == 0 and heat.stdout.strip() == "True", heat.stderr


def test_the_tf_backend_without_tensorflow_says_what_to_install(tagged):
    result = blocked("tag", tagged / "in", tagged / "tf-missing", "--backend", "tf")
    assert result.returncode != 0
    assert 'pip install "terc-tag[train]"' in result.stdout + result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_help_version_and_a_run_with_nothing_new_import_neither_tensorflow_nor_openvino(tagged):
    for args in (["--help"], ["--version"], ["tag", "--help"], ["tag", tagged / "in", tagged / "out"]):
        result = blocked(*args, block="tensorflow,keras,openvino")
        assert result.returncode == 0, (args, result.stderr)
    assert "0 photos tagged" in result.stdout


@pytest.mark.parametrize("command", [["train", ISS, "--out", "{tmp}/m"], ["fit-codes", ISS],
                                     ["tag", ISS, "{tmp}/out", "--backend", "tf"]])
def test_what_needs_tensorflow_says_so_in_one_line(command, tmp_path):
    """No traceback: one line naming the extra that brings TensorFlow, exit 2 (a usage problem of this install)."""
    done = blocked(*[str(part).format(tmp=tmp_path) for part in command])
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and 'pip install "terc-tag[train]"' in done.stderr, done.stderr
