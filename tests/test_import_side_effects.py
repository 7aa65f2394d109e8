"""Importing the library changes nothing global; only the command line (``tagger.cli.main``) may.

A program that imports a tagger module keeps its environment variables and its warning filters:
quieting TensorFlow and Pillow happens where it is needed (the command line, the decoder).
"""

import json
import os
import subprocess
import sys

from conftest import ROOT

#: Run in a fresh process: the third-party libraries the modules import at module level are imported
#: first (what they change is theirs), then every tagger module, and what changed in between is printed.
CHILD = r"""
import ast, importlib, json, os, sys, warnings
from pathlib import Path

package = Path(sys.argv[1]) / "tagger"
files = {".".join(("tagger", *p.relative_to(package).with_suffix("").parts)).removesuffix(".__init__"): p
         for p in sorted(package.rglob("*.py")) if p.name != "__main__.py"}  # __main__ runs the command line


def module_level_imports(tree):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue  # runs when called, not on import
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
        else:
            yield from module_level_imports(node)


third_party = sorted({name for path in files.values() for name in module_level_imports(ast.parse(path.read_text()))
                      if name.split(".")[0] != "tagger"})
for name in third_party:
    try:
        importlib.import_module(name)
    except ImportError:
        pass  # an optional dependency this install lacks; the modules that need it are left out below

environment, filters = dict(os.environ), list(warnings.filters)
imported, missing = [], []
for module in files:
    try:
        importlib.import_module(module)
        imported.append(module)
    except ImportError as exc:
        missing.append(f"{module}: {exc}")
print(json.dumps({
    "imported": imported,
    "missing": missing,
    "environment": sorted(set(os.environ.items()) ^ set(environment.items())),
    "filters": [repr(f) for f in warnings.filters if f not in filters]
               + [repr(f) for f in filters if f not in warnings.filters],
}))
"""


def test_importing_every_module_changes_no_environment_variable_and_no_warning_filter():
    done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert done.returncode == 0, done.stderr
    changed = json.loads(done.stdout.splitlines()[-1])
    imported = set(changed["imported"])
    assert {"tagger", "tagger.decode", "tagger.cli", "tagger.tagging.report", "tagger.explain"} <= imported
    assert not changed["environment"], changed["environment"]
    assert not changed["filters"], changed["filters"]
