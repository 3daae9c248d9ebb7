"""No fault-name list exists twice: a fault type's name is written, as a string, in its
`FaultType` definition and in the one recipe (or `fault_types` declaration) of each adapter that
serves it, and nowhere else in chaos/. A list that restates a table (`chaos proxy`'s faults
restating the proxy's toxic table) is derived from it instead. Docstrings and comments may
name fault types freely."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from chaos.faults import new_registry

CHAOS = Path(__file__).parents[2] / "chaos"
DEFINERS = ("FaultType", "_fault")  # chaos/faults: a fault type's definition
# Modules that *choose* one fault type for a purpose rather than restate a table of them: a
# Chaos Toolkit activity -> the fault that does its work, `chaos init`'s starter fault per target
CHOOSERS = {"ctk/mapping.py", "ctk/actions.py", "cli/init.py"}


def names() -> frozenset[str]:
    return frozenset(f.name for f in new_registry())


def docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def allowed(tree: ast.Module) -> set[int]:
    """The string constants in a definition, a recipe table's keys, a `fault_types` value."""
    ok: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in DEFINERS:
                ok.update(id(n) for arg in [*node.args, *(k.value for k in node.keywords)]
                          for n in ast.walk(arg) if isinstance(n, ast.Constant))
            if name == "fromkeys" and node.args:  # dict.fromkeys((names...), recipe)
                ok.update(id(n) for n in ast.walk(node.args[0]))
        elif isinstance(node, ast.Dict):  # a recipe table: fault type -> how it is done
            ok.update(id(key) for key in node.keys if key is not None)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "fault_types" for t in targets) \
                    and node.value is not None:
                ok.update(id(n) for n in ast.walk(node.value))
    return ok


def strays(path: Path, known: frozenset[str], root: Path = CHAOS) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    skip, ok = docstrings(tree), allowed(tree)
    seen: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and node.value in known) or id(node) in skip:
            continue
        where = f"{path.relative_to(root)}:{node.lineno}: {node.value!r}"
        if id(node) not in ok:
            yield f"{where} outside a definition, a recipe or `fault_types`"
        elif node.value in seen:
            yield f"{where} a second time in one module"
        seen.add(str(node.value))


def test_fault_type_names_appear_only_where_they_are_defined_or_done() -> None:
    known = names()
    found = [stray for path in sorted(CHAOS.rglob("*.py"))
             if path.relative_to(CHAOS).as_posix() not in CHOOSERS
             for stray in strays(path, known)]
    assert not found, "derive these from the registry or the recipe table:\n" + "\n".join(found)


def test_the_check_sees_a_restated_list(tmp_path: Path) -> None:
    restated = tmp_path / "proxy.py"
    restated.write_text('"""`chaos proxy`: network.latency and friends."""\n'
                        'PROXY_FAULTS = ("network.latency", "http.abort")  # network.loss\n'
                        'RECIPES = {"network.loss": 1, "network.dns": 2}\n'
                        'AGAIN = {"network.dns": 3}\n')
    assert list(strays(restated, names(), tmp_path)) == [
        "proxy.py:2: 'network.latency' outside a definition, a recipe or `fault_types`",
        "proxy.py:2: 'http.abort' outside a definition, a recipe or `fault_types`",
        "proxy.py:4: 'network.dns' a second time in one module"]
