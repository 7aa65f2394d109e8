#!/usr/bin/env python3
"""Report the code-shape limits of issue 31 for a package: import cycles, long functions, wide functions.

Prints every import cycle among the package's modules (the strongly
connected components of the module graph, counting every import: at module
level, inside functions, under ``if TYPE_CHECKING``), every function longer
than 80 lines (``def`` to its last line, decorators left out), and every
function with more than 8 parameters (all of them, ``self`` and ``*args``
included).  Click commands are excepted from the parameter count: their
options are their parameters.  Exits 1 when it found anything, else 0.

    python tools/code_shape.py            # the tagger package
    python tools/code_shape.py path/to/pkg
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

MAX_LINES = 80
MAX_PARAMETERS = 8


def module_names(package: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, not ``.__init__``)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source.

    ``from a.b import c`` imports ``a.b`` (it runs first, and ``c`` is looked
    up in it) and also ``a.b.c`` where that is a module.
    """
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import a.b.c`` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def is_click_command(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Decorated with ``click.command``, ``click.group`` or ``<group>.command`` / ``<group>.group``."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("command", "group"):
            return True
    return False


def parameter_count(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = function.args
    return (len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
            + (args.vararg is not None) + (args.kwarg is not None))


def shape_problems(package: Path) -> tuple[list[list[str]], list[str], list[str]]:
    """Import cycles, long functions and wide functions, each as printable lines."""
    modules = module_names(package)
    graph, long, wide = {}, [], []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[name] = imported_modules(name, path, tree, modules)
        where = path.relative_to(package.parent)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_LINES:
                long.append(f"{where}:{node.lineno} {node.name}: {lines} lines")
            count = parameter_count(node)
            if count > MAX_PARAMETERS and not is_click_command(node):
                wide.append(f"{where}:{node.lineno} {node.name}: {count} parameters")
    return cycles(graph), long, wide


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", nargs="?", default=str(Path(__file__).resolve().parents[1] / "tagger"),
                        help="the package folder (default: tagger/)")
    package = Path(parser.parse_args(argv).package).resolve()
    found_cycles, long, wide = shape_problems(package)
    print(f"import cycles: {len(found_cycles)}")
    for component in found_cycles:
        print("  " + " <-> ".join(component))
    print(f"functions over {MAX_LINES} lines: {len(long)}")
    for line in long:
        print("  " + line)
    print(f"functions over {MAX_PARAMETERS} parameters (click commands excepted): {len(wide)}")
    for line in wide:
        print("  " + line)
    return 1 if found_cycles or long or wide else 0


if __name__ == "__main__":
    sys.exit(main())
