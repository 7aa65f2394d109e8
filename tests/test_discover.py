import os

from tagger.discover import discover


def test_finds_photos_in_any_case_and_lists_everything_else(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("x.JPG", "a/y.jpeg", "a/z.Tif", "w.png", "notes.txt", "clip.mov"):
        (tmp_path / name).write_bytes(b"data")
    found = discover(tmp_path)
    assert sorted(map(str, found.photos)) == ["a/y.jpeg", "a/z.Tif", "w.png", "x.JPG"]
    assert sorted(str(p) for p, _ in found.skipped) == ["clip.mov", "notes.txt"]


def test_symlink_loop_is_reported_not_followed_forever(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.jpg").write_bytes(b"x")
    os.symlink("..", tmp_path / "sub" / "up")
    os.symlink("self", tmp_path / "self")
    found = discover(tmp_path, follow_symlinks=True)
    assert [str(p) for p in found.photos] == ["sub/p.jpg"]
    reasons = dict((str(p), r) for p, r in found.skipped)
    assert "loops back" in reasons["sub/up"]
    assert "self" in reasons


def test_state_folder_is_not_input(tmp_path):
    (tmp_path / ".terc-tag").mkdir()
    (tmp_path / ".terc-tag" / "x.jpg").write_bytes(b"x")
    assert discover(tmp_path).photos == []
