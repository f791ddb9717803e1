"""The package's layers (docs/architecture.md) hold: no import circle, and every import, inside
functions too, goes to a module listed earlier."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "poetry_lstm"


def documented_order() -> list[tuple[str, str]]:
    """(layer, module) in the order docs/architecture.md lists them."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```layers\n(.*?)```", text, re.S).group(1)
    return [(layer.strip(), module) for layer, modules in (row.split(":", 1) for row in block.strip().splitlines())
            for module in modules.split()]


def imports_of(path: Path) -> set[str]:
    """The package's modules that `path` imports anywhere in it (module level or inside functions),
    and, for `__init__`, the modules its lazy names come from."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 1:
                found |= {parts[0]} if node.module else {a.name for a in node.names}
            elif parts[0] == "poetry_lstm":
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("poetry_lstm.")}
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_EXPORTS" for t in node.targets):
            found |= set(ast.literal_eval(node.value).values())
    return found - {path.stem}


def test_every_module_is_placed_in_a_layer_once():
    listed = [module for _, module in documented_order()]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(p.stem for p in PACKAGE.glob("*.py"))


def test_each_module_imports_only_what_comes_before_it():
    order = documented_order()
    place = {module: i for i, (_, module) in enumerate(order)}
    layer = dict((module, name) for name, module in order)
    wrong = [f"{m} ({layer[m]}) imports {d} ({layer.get(d, 'not a module')})"
             for m in place for d in sorted(imports_of(PACKAGE / f"{m}.py"))
             if d in place and place[d] > place[m] or d not in place and (PACKAGE / f"{d}.py").exists()]
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_there_is_no_import_circle():
    graph = {p.stem: imports_of(p) & {q.stem for q in PACKAGE.glob("*.py")} for p in PACKAGE.glob("*.py")}
    done, visiting = set(), []

    def visit(m):
        assert m not in visiting, "import circle: " + " → ".join(visiting[visiting.index(m):] + [m])
        if m in done:
            return
        visiting.append(m)
        for d in sorted(graph[m]):
            visit(d)
        visiting.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_the_checks_see_an_import_inside_a_function(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("def f():\n    from .overuse import penalties\n    from poetry_lstm import evaluate\n",
                    encoding="utf-8")
    assert imports_of(path) == {"overuse", "evaluate"}
