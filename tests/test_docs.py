"""The docs stay true to the code: the CLI reference is regenerated and compared."""

import re
import subprocess
import sys

from conftest import ROOT


def test_cli_reference_is_current():
    done = subprocess.run([sys.executable, "docs/cli_reference.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings outside code blocks."""
    anchors, in_code = set(), False
    for line in markdown.split("\n"):
        in_code ^= line.startswith("```")
        if not in_code and line.startswith("#"):
            anchors.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
    return anchors


def test_every_link_between_the_pages_lands():
    """README and docs/ link to files that exist and to headings they hold."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            if not linked.exists() or (anchor and anchor not in _anchors(linked.read_text(encoding="utf-8"))):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_readme_stays_short():
    """The README says what terc-tag is, how to start and where to read on; docs/ holds the manual."""
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 400


def test_the_test_command_lints_and_type_checks_before_pytest():
    """tests/run.sh (the README's test command) runs ruff and mypy with pyproject.toml's settings first, under
    ``set -e``, so a finding fails the run; the ``test`` extra installs both."""
    import configparser

    script = [line.strip() for line in (ROOT / "tests" / "run.sh").read_text().splitlines()
              if line.strip() and not line.strip().startswith("#")]
    position = {tool: next(i for i, line in enumerate(script) if line.startswith(f".venv/bin/{tool}"))
                for tool in ("ruff check", "mypy")}
    pytest_run = max(i for i, line in enumerate(script) if "-m pytest" in line)
    assert "set -euo pipefail" in script and max(position.values()) < pytest_run
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    test_extra = {re.split(r"[<>=\[ ]", line)[0] for line in setup["options.extras_require"]["test"].split()}
    assert {"ruff", "mypy"} <= test_extra
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "[tool.ruff]" in pyproject and "[tool.ruff.lint]" in pyproject and "[tool.mypy]" in pyproject
