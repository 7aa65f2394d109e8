from pathlib import Path

import pytest

from tagger import TERC_TAGS
from tagger.labels import LabelsError, labels_from_metadata, match_labels, read_labels_file
from conftest import HIRISE, ISS


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
