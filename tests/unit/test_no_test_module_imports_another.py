"""Test modules share helpers through tests/support only (house style, rule 12).

A helper imported from another test module drags that module's tests, fixtures and side effects
along, and moving or deleting a test breaks unrelated ones. The scan reads every module under
tests/ with `ast` (nothing is imported): each `tests.*` import must name tests/support or a
conftest (pytest's own sharing mechanism).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, package: str, root: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of each import: `from a import b` names a.b when b is a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                as_path = root.parent / Path(*sub.split("."))
                is_module = as_path.with_suffix(".py").exists() or (as_path / "__init__.py").exists()
                yield node.lineno, sub if is_module else base


def allowed(module: str, root: Path) -> bool:
    parts = module.split(".")
    return (parts[0] != root.name or parts[1:2] == ["support"] or parts[-1] == "conftest")


def imports_of_other_test_modules(root: Path) -> list[str]:
    """`file:line imports module` for every import of a test module from tests/ at `root`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for line, module in imported(ast.parse(path.read_text(), str(path)), package, root):
            if not allowed(module, root):
                found.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return list(dict.fromkeys(found))  # `from m import a, b` is one import of m


def test_test_modules_import_helpers_only_from_support_and_conftest() -> None:
    found = imports_of_other_test_modules(ROOT / "tests")
    assert not found, ("move what these import into tests/support/ (a module named for what "
                       "it holds):\n" + "\n".join(found))


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_scan_finds_every_way_of_importing_a_test_module(tmp_path: Path) -> None:
    root = tmp_path / "tests"
    for package in ("", "a/", "support/"):
        write(root, f"{package}__init__.py", "")
    write(root, "a/test_one.py", "def helper(): pass\n")
    write(root, "a/shared.py", "X = 1\n")
    write(root, "a/conftest.py", "from tests.support.tools import tool\n")
    write(root, "support/tools.py", "import json\nfrom tests.a.conftest import tool\n")
    write(root, "a/test_two.py", "\n".join([
        "from tests.a.test_one import helper",
        "import tests.a.test_one",
        "from tests.a import shared",
        "from .shared import X",
        "from . import test_one",
        "from tests.support.tools import tool",
        "from tests.a.conftest import tool",
        "def f():",
        "    from tests.a.shared import X",
    ]) + "\n")
    assert imports_of_other_test_modules(root) == [
        "tests/a/test_two.py:1 imports tests.a.test_one",
        "tests/a/test_two.py:2 imports tests.a.test_one",
        "tests/a/test_two.py:3 imports tests.a.shared",
        "tests/a/test_two.py:4 imports tests.a.shared",
        "tests/a/test_two.py:5 imports tests.a.test_one",
        "tests/a/test_two.py:9 imports tests.a.shared",
    ]
