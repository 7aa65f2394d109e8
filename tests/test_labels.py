from pathlib import Path

import pytest
from conftest import HIRISE, ISS

from tagger import TERC_TAGS
from tagger.labels import LabelsError, labels_from_metadata, match_labels, read_labels_file


def test_labels_from_terc_metadata():
    labels, errors = labels_from_metadata(ISS, [Path("iss040e092721.jpg"), Path("iss049e009128.jpg")], TERC_TAGS)
    assert errors == []
    assert labels[Path("iss040e092721.jpg")] == ["Volcano", "Day"]
    assert labels[Path("iss049e009128.jpg")] == ["ISS Structure", "Inside ISS", "Cupola"]


def test_unreadable_photo_is_reported(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    labels, errors = labels_from_metadata(tmp_path, [Path("bad.jpg")], TERC_TAGS)
    assert labels == {} and errors[0][0] == Path("bad.jpg")


def test_hirise_class_id_list_with_class_map():
    labels, vocabulary = read_labels_file(HIRISE / "labels.txt")
    assert vocabulary[:3] == ["other", "crater", "dark dune"]
    assert labels[Path("ESP_011289_1950_RED-0170.jpg")] == ["slope streak"]


def test_csv_labels_and_matching_by_name(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,tags\nsub/a.jpg,Day;Moon\nb.jpg,\n")
    labels, vocabulary = read_labels_file(path)
    assert vocabulary == ["Day", "Moon"]
    assert match_labels([Path("elsewhere/a.jpg"), Path("b.jpg"), Path("c.jpg")], labels) == {
        Path("elsewhere/a.jpg"): ["Day", "Moon"], Path("b.jpg"): []}


@pytest.mark.parametrize("text", ["", "name;tags\nx,y\n", "a.jpg 99\n"])
def test_bad_labels_files_say_why(tmp_path, text):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    (tmp_path / "classmap.csv").write_text("0,other\n")
    with pytest.raises(LabelsError):
        read_labels_file(path)


# --- --folder-labels: each photo's class from its parent folder (EuroSAT's layout) ---

import json  # noqa: E402
import shutil  # noqa: E402

from click.testing import CliRunner  # noqa: E402
from conftest import EXAMPLES  # noqa: E402

from tagger.cli import main  # noqa: E402
from tagger.labels import labels_from_folders  # noqa: E402


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def by_folder(tmp_path) -> Path:
    """The sample and fixture photos sorted into class folders, plus one loose photo and one odd class."""
    root = tmp_path / "classes"
    photos = sorted(EXAMPLES.glob("*.jpg")) + sorted(ISS.glob("*.jpg"))
    for i, photo in enumerate(photos):
        folder = root / ("Night" if i % 2 else "Day")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, folder / f"{'iss1' if photo.parent == ISS else 'iss0'}{photo.name[4:]}")
    shutil.copy(photos[0], root / "loose.jpg")
    (root / "Cats").mkdir()
    shutil.copy(photos[1], root / "Cats" / "cat.jpg")
    return root


def test_labels_from_folders_take_the_parent_folder_name():
    labels, classes = labels_from_folders([Path("Forest/a.jpg"), Path("Sea/Lake/b.jpg"), Path("c.jpg")])
    assert labels == {Path("Forest/a.jpg"): ["Forest"], Path("Sea/Lake/b.jpg"): ["Lake"], Path("c.jpg"): []}
    assert classes == ["Forest", "Lake"]


def test_labels_and_evaluate_read_folder_labels(by_folder, tmp_path):
    listed = run("labels", by_folder, "--folder-labels")
    assert listed.exit_code == 0
    assert "Cats/cat.jpg\tCats" in listed.output and "loose.jpg\t\n" in listed.output
    both = run("labels", by_folder, "--folder-labels", "--labels", tmp_path / "x.csv")
    assert both.exit_code == 2 and "give one" in both.output

    report = tmp_path / "report.json"
    evaluated = run("evaluate", by_folder, "--folder-labels", "--json", report, "--backend", "tf")
    assert evaluated.exit_code == 0, evaluated.output
    figures = json.loads(report.read_text())
    assert figures["n_images"] == 18  # Cats is no class of the model, and loose.jpg has no folder: both left out
    assert figures["tags"]["Day"]["support"] == 9 and figures["tags"]["Night"]["support"] == 9
    assert "2 photos carry no tag of the vocabulary" in evaluated.output


def test_train_learns_the_folder_names_as_its_vocabulary(by_folder, tmp_path):
    shutil.rmtree(by_folder / "Cats")
    out = tmp_path / "model"
    result = run("train", by_folder, "--folder-labels", "--out", out, "--weights", "none", "--input-size", 32,
                 "--c", "0.1", "--code-bits", 0, "-q")
    assert result.exit_code == 0, result.output
    card = json.loads((out / "model.json").read_text())
    assert card["vocabulary"] == ["Day", "Night"] and card["training"]["labels_source"] == "parent folder names"
