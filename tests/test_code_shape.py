"""tools/code_shape.py finds what issue 31 forbids, and the package is free of it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "code_shape.py"
sys.path.insert(0, str(TOOL.parent))

from code_shape import shape_problems  # noqa: E402


def _package(tmp_path, files: dict) -> Path:
    package = tmp_path / "pkg"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_it_reports_lazy_cycles_long_and_wide_functions_but_not_click_commands(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(80))
    package = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg.sub import b\n",
        "sub/__init__.py": "",
        "sub/b.py": "def late():\n    from pkg import a  # lazy: still a cycle\n",
        "c.py": f"def long():\n{body}\n\ndef wide(a, b, c, d, e, f, g, h, i):\n    pass\n\n"
                "import click\n\n@click.command()\ndef command(a, b, c, d, e, f, g, h, i):\n    pass\n\n"
                "class K:\n    def method(self, a, b, c, d, e, f, g, h):\n        pass\n",
    })
    cycles, long, wide = shape_problems(package)
    assert cycles == [["pkg.a", "pkg.sub.b"]]
    assert long == ["pkg/c.py:1 long: 81 lines"]
    assert wide == ["pkg/c.py:84 wide: 9 parameters", "pkg/c.py:94 method: 9 parameters"]  # self counts
    done = subprocess.run([sys.executable, str(TOOL), str(package)], capture_output=True, text=True)
    assert done.returncode == 1 and "pkg.a <-> pkg.sub.b" in done.stdout
    clean = _package(tmp_path / "clean", {"__init__.py": "", "a.py": "def f(a, b):\n    return a\n"})
    done = subprocess.run([sys.executable, str(TOOL), str(clean)], capture_output=True, text=True)
    assert done.returncode == 0 and "import cycles: 0" in done.stdout


def test_the_package_has_no_cycle_nor_long_or_wide_function():
    assert shape_problems(ROOT / "tagger") == ([], [], [])
