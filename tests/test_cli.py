"""The command line: wiring, messages, exit codes, documentation."""

import csv
import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import HIRISE, ISS, ROOT

from tagger.cli import main
from tagger.state import RunLock

COMMANDS = sorted(main.commands)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_examples(name):
    result = run(name, "--help")
    assert result.exit_code == 0
    examples = result.output.split("Examples:")[1].split("Options:")[0]
    assert examples.strip().startswith("terc-tag")


@pytest.mark.parametrize("name", COMMANDS)
def test_the_docs_explain_every_command_and_option(name):
    """The README names every command, and the hand-written pages of docs/ (not the generated
    CLI reference) explain every option."""
    assert f"terc-tag {name}" in (ROOT / "README.md").read_text()
    manual = "\n".join(page.read_text() for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
                       if page.name != "cli.md")
    for param in main.commands[name].params:
        for option in param.opts:
            if option.startswith("--") and option != "--help":
                assert option in manual, f"docs/ does not mention {name} {option}"


def test_help_and_version_do_not_import_tensorflow():
    code = ("import sys; from click.testing import CliRunner; from tagger.cli import main;"
            "r = CliRunner().invoke(main, ['--help']); CliRunner().invoke(main, ['tag', '--help']);"
            "CliRunner().invoke(main, ['--version']); print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_backend_names_match_the_library():
    from tagger.cli.common import BACKEND_CHOICES
    from tagger.model import BACKENDS

    assert BACKEND_CHOICES == BACKENDS


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and re.search(r"terc-tag, version \d+\.\d+", result.output)


def test_tag_end_to_end_with_default_command(iss_photos, tmp_path):
    out = tmp_path / "tagged"
    summary_file = tmp_path / "summary.json"
    review = tmp_path / "review.csv"
    log = tmp_path / "run.log"
    result = run(iss_photos, out, "--json-summary", summary_file, "--review", review, "--review-margin", "0.5",
                 "--log-file", log)
    assert result.exit_code == 0, result.output
    assert "6 photos tagged" in result.output and "photos/s" in result.output
    summary = json.loads(summary_file.read_text())
    assert summary["tagged"] == 6 and summary["failed"] == []
    rows = list(csv.DictReader(review.open()))
    distances = [abs(float(r["probability"]) - float(r["threshold"])) for r in rows]
    # Sorted by the unrounded distance: read back from 4 decimals, neighbours may differ by rounding alone.
    # margin 0.5: every tag uncertain
    assert rows and all(a <= b + 1e-4 for a, b in zip(distances, distances[1:], strict=False))
    assert "6 tagged" in log.read_text()

    again = run("tag", iss_photos, out, "--quiet")
    assert again.exit_code == 0 and again.output == ""


def test_tag_exit_code_1_names_the_failed_file(iss_photos, tmp_path):
    (iss_photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run(iss_photos, tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    assert "broken.jpg" in result.output


def test_unwritable_report_is_one_more_failure_not_a_crash(iss_photos, tmp_path):
    result = run(iss_photos, tmp_path / "out", "--json-summary", tmp_path / "no" / "such" / "dir" / "s.json")
    assert result.exit_code == 1
    assert re.search(r"cannot write \S*/s\.json: No such file", result.output)
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 6


def test_tag_exit_code_3_when_another_run_holds_the_lock(iss_photos, tmp_path):
    out = tmp_path / "out"
    with RunLock(out):
        result = run(iss_photos, out)
    assert result.exit_code == 3
    assert "another terc-tag run" in result.output


@pytest.mark.parametrize("args, message", [
    (["--model", "/no/such/model"], "is not a model bundle"),
    (["--threshold", "1.5"], "not between 0 and 1"),
    (["--threshold", "sometimes"], "neither a number nor 'calibrated'"),
])
def test_bad_options_exit_2_with_one_line(iss_photos, tmp_path, args, message):
    result = run(iss_photos, tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_output_inside_input_is_refused(iss_photos):
    result = run(iss_photos, iss_photos / "tagged")
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "inside INPUT" in result.output


def test_labels_prints_and_writes_csv(tmp_path):
    result = run("labels", ISS)
    assert result.exit_code == 0
    assert "iss040e092721.jpg\tVolcano;Day" in result.output
    out = tmp_path / "labels.csv"
    assert run("labels", ISS, "--csv", out).exit_code == 0
    assert list(csv.reader(out.open()))[0] == ["file", "tags"]


def test_labels_from_hirise_list():
    result = run("labels", HIRISE, "--labels", HIRISE / "labels.txt")
    assert result.exit_code == 0 and "ESP_011289_1950_RED-0170.jpg\tslope streak" in result.output


def test_evaluate_json_has_the_promised_shape(tmp_path):
    report_file, markdown_file, figure_file = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png"
    result = run("evaluate", ISS, "--json", report_file, "--markdown", markdown_file, "--figure", figure_file)
    assert result.exit_code == 0, result.output
    report = json.loads(report_file.read_text())
    assert report["n_images"] == 6
    for tag in report["tags"].values():
        assert {"support", "accuracy", "baseline_accuracy", "precision", "recall", "f1", "balanced_accuracy",
                "average_precision", "mcc"} <= set(tag)
    assert {"exact_match", "baseline_exact_match", "hamming_loss", "macro_f1", "micro_f1",
            "mean_average_precision"} <= set(report["overall"])
    assert report["tags"]["Volcano"]["support"] == 1
    assert "| Volcano | 1 |" in markdown_file.read_text()
    assert figure_file.read_bytes().startswith(b"\x89PNG")
    assert "baseline" in result.output


def test_evaluate_warns_about_training_photos(tmp_path):
    card = json.loads((ROOT / "models" / "terc-iss" / "model.json").read_text())
    train_photo = card["split"]["train"][0]
    source = ROOT.parent / "shared" / "data" / "iss-terc" / "images" / train_photo
    if not source.exists():
        pytest.skip("../shared/data is not beside the checkout")
    (tmp_path / train_photo).write_bytes(source.read_bytes())
    result = run("evaluate", tmp_path)
    assert "used to train this model" in result.output


def test_evaluate_leaves_out_unlabelled_photos(iss_photos, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), (10, 20, 30)).save(iss_photos / "untagged.jpg")
    report_file = tmp_path / "r.json"
    result = run("evaluate", iss_photos, "--json", report_file)
    assert result.exit_code == 0
    assert "1 photos carry no tag of the vocabulary" in result.output
    assert json.loads(report_file.read_text())["n_images"] == 6


def test_evaluate_without_dir_says_what_to_pass_when_test_photos_are_elsewhere(tmp_path):
    import shutil

    moved = tmp_path / "moved-model"
    shutil.copytree(ROOT / "models" / "terc-iss", moved)
    result = run("evaluate", "--model", moved)
    assert result.exit_code == 2
    assert "pass the folder: terc-tag evaluate DIR" in result.output


def test_evaluate_split_selects_card_members(tmp_path):
    card = json.loads((ROOT / "models" / "terc-iss" / "model.json").read_text())
    test_photos = {p.name for p in ISS.glob("*.jpg")} & set(card["split"]["test"])
    assert len(test_photos) == 6  # the fixtures come from the test split
    report_file = tmp_path / "r.json"
    assert run("evaluate", ISS, "--split", "train", "--json", report_file).exit_code == 2  # none are training photos
    assert run("evaluate", ISS, "--split", "test", "--json", report_file).exit_code == 0
    assert json.loads(report_file.read_text())["n_images"] == 6


@pytest.mark.parametrize("name", ["labels", "evaluate"])
def test_ctrl_c_is_exit_130_in_every_command(name, monkeypatch, tmp_path):
    """Click would say 'Aborted!' and exit 1; every command exits 130, as `tag` does."""
    import tagger.discover
    import tagger.evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    for module in (tagger.discover, tagger.evaluate):  # evaluate's library module holds its own reference
        monkeypatch.setattr(module, "discover", interrupted)
    result = CliRunner().invoke(main, [name, str(ISS)])
    assert result.exit_code == 130 and "interrupted" in result.output, result.output


def test_quiet_means_the_same_in_every_command():
    """-q: nothing on stdout but errors, files asked for still written; one option, one help text."""
    helps = {param.help for command in main.commands.values() for param in command.params
             if "--quiet" in getattr(param, "opts", [])}
    assert len(helps) == 1
