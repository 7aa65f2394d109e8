"""One error model: faults of the input or machine are one line and an exit code; bugs show their traceback."""

import importlib
import inspect
import json
import pkgutil
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import ISS

import tagger
from tagger.cli import main
from tagger.errors import EXIT_INTERNAL, EXIT_LOCKED, EXIT_NO_SPACE, EXIT_USAGE, TercTagError

#: Modules that need packages the no-TensorFlow install lacks are still walked here: this suite has them all.
MODULES = [importlib.import_module(m.name) for m in pkgutil.walk_packages(tagger.__path__, "tagger.")
           if m.name != "tagger.__main__"]


def exception_classes():
    for module in MODULES:
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.__name__:
                yield pytest.param(value, id=f"{module.__name__}.{name}")


@pytest.mark.parametrize("error", list(exception_classes()))
def test_every_error_terc_tag_raises_is_a_terc_tag_error(error):
    """So the command line can say each in one line with its exit code, and catch nothing broader."""
    assert issubclass(error, TercTagError)
    assert error.exit_code in (EXIT_USAGE, EXIT_LOCKED, EXIT_NO_SPACE)


def test_the_errors_keep_the_bases_callers_relied_on():
    """A library user's ``except ValueError`` around ``Bundle`` or ``except OSError`` around a run still works."""
    from tagger.bundle import BundleError
    from tagger.state import LockHeld, StateError
    from tagger.tagging.stages import NoSpace

    assert issubclass(BundleError, ValueError) and issubclass(NoSpace, OSError)
    assert issubclass(StateError, sqlite3.DatabaseError)
    assert (LockHeld.exit_code, NoSpace.exit_code) == (EXIT_LOCKED, EXIT_NO_SPACE)


def _raising(monkeypatch, exc):
    import tagger.discover

    def fails(*args, **kwargs):
        raise exc

    monkeypatch.setattr(tagger.discover, "discover", fails)


def test_a_bug_shows_its_traceback_and_exits_70(monkeypatch):
    _raising(monkeypatch, ZeroDivisionError("division by zero"))
    result = CliRunner().invoke(main, ["labels", str(ISS)])
    assert result.exit_code == EXIT_INTERNAL, result.output
    assert "Traceback (most recent call last)" in result.stderr and "ZeroDivisionError" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("terc-tag: error: internal error: ZeroDivisionError")
    assert "please report" in result.stderr


def test_an_os_error_is_one_line_naming_its_file(monkeypatch):
    _raising(monkeypatch, PermissionError(13, "Permission denied", "/archive/photos"))
    result = CliRunner().invoke(main, ["labels", str(ISS)])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == "terc-tag: error: /archive/photos: Permission denied\n"


def test_a_full_disk_is_exit_4(monkeypatch):
    _raising(monkeypatch, OSError(28, "No space left on device", "/archive/labels.csv"))
    assert CliRunner().invoke(main, ["labels", str(ISS)]).exit_code == EXIT_NO_SPACE


def test_a_terc_tag_error_is_its_own_line_and_code(monkeypatch):
    from tagger.state import LockHeld

    _raising(monkeypatch, LockHeld("another run holds /archive/out (pid 7)"))
    result = CliRunner().invoke(main, ["labels", str(ISS)])
    assert result.exit_code == EXIT_LOCKED
    assert result.stderr == "terc-tag: error: another run holds /archive/out (pid 7)\n"


def test_a_bug_in_a_tag_run_is_recorded_like_every_ending(monkeypatch, tmp_path):
    """The log and the JSON summary say how the run ended, and the traceback still shows."""
    import tagger.tagging.pipeline

    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(tagger.tagging.pipeline, "discover", broken)
    log, summary = tmp_path / "runs.log", tmp_path / "run.json"
    result = CliRunner().invoke(main, ["tag", str(ISS), str(tmp_path / "out"), "--log-file", str(log),
                                       "--json-summary", str(summary)])
    assert result.exit_code == EXIT_INTERNAL and "Traceback" in result.stderr
    assert "internal error (exit 70): KeyError: 'oops'" in log.read_text()
    assert json.loads(summary.read_text())["ended"] == "internal error"


def test_a_damaged_state_is_a_state_error(tmp_path):
    from tagger.state import State, StateError, state_file

    state_file(tmp_path).parent.mkdir()
    state_file(tmp_path).write_bytes(b"not a database, but long enough to look like a header " * 4)
    with pytest.raises(StateError, match="cannot be used"):
        State.reader(tmp_path)
    with pytest.raises(StateError, match="cannot be used"):
        State(tmp_path)
