"""The house's arrows point one way: no import cycle, no lower layer importing a higher one.

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a cycle hidden from
the interpreter is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "llmsynthor"

# low to high, by folder: a module may import modules of its own folder or of lower ones
LAYERS = [
    ("core", "the data model: errors, variables, tables, records, rules, counting records into tables"),
    ("declarations", "what a spec file declares and how it is read"),
    ("fitting", "algorithms over candidates and counts, no LLM"),
    ("llm", "LLM backends, knowing nothing of tables or the loop"),
    ("prior", "what the LLM is asked and what its answers become"),
    ("evaluation", "scoring records against targets, held-out tables and rules"),
    ("outputs", "files, manifests, report sections"),
    ("shapes", "record shapes on the shared core, none importing another"),
    ("entry", "the command line, the short path and the package: cli/, api, __init__"),
]
ENTRY = {"cli", "api", "__init__"}
LAYER_NAMES = [name for name, _ in LAYERS]


def layer(module: str) -> int:
    top = module.split(".")[0]
    return LAYER_NAMES.index("entry" if top in ENTRY else top) if (top in ENTRY or top in LAYER_NAMES) else -1


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)


KNOWN = {module_name(p) for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, resolved to names like 'llm.base'."""
    name = module_name(path)
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".") if name != "__init__" else []
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names = [".".join(filter(None, [target, a.name])) for a in node.names]
            if node.module is None or target in KNOWN or not target:
                found.update(n for n in names if n in KNOWN)
            if target in KNOWN and not (node.module is None and all(n in KNOWN for n in names)):
                found.add(target)  # `from . import flat` imports the submodule, not the package's __init__
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmsynthor"):
            target = node.module.removeprefix("llmsynthor").lstrip(".") or "__init__"
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("llmsynthor.") for a in node.names if a.name.startswith("llmsynthor."))
    found.discard(name)
    return found


GRAPH = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_is_in_a_layer_folder():
    assert sorted(m for m in GRAPH if layer(m) < 0) == [], "put new modules in one of the LAYERS' folders"


def test_no_lower_layer_imports_a_higher_one():
    wrong = [f"{m} ({LAYER_NAMES[layer(m)]}) imports {d} ({LAYER_NAMES[layer(d)]})"
             for m, deps in GRAPH.items() for d in deps if layer(d) > layer(m)]
    assert wrong == []


def test_no_record_shape_imports_another():
    def shape(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if parts[0] == "shapes" and len(parts) >= 2 else None

    wrong = [f"{m} imports {d}" for m, deps in GRAPH.items() for d in deps if shape(m) and shape(d) and shape(d) != shape(m)]
    assert wrong == []


def test_backends_know_nothing_of_statistics_or_the_loop():
    allowed = {"core.errors", "core.urls"}
    wrong = [f"{m} imports {d}" for m in GRAPH if layer(m) == LAYER_NAMES.index("llm")
             for d in GRAPH[m] if layer(d) != LAYER_NAMES.index("llm") and d not in allowed]
    assert wrong == []


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(GRAPH.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [m, d]) if d in stack else f"{m} -> {d}")
            elif d not in state:
                visit(d, stack + [m])
        state[m] = 2

    for module in GRAPH:
        if module not in state:
            visit(module, [])
    assert cycles == []


@pytest.mark.parametrize("source, expected", [
    ("from .core.tables import Targets", {"core.tables"}),
    ("from .shapes.flat import checkpoint, steps", {"shapes.flat", "shapes.flat.checkpoint", "shapes.flat.steps"}),
    ("from . import api", {"api"}),
    ("from .llm.base import LLMBackend", {"llm.base"}),
    ("if TYPE_CHECKING:\n    from .prior.copula import PairwisePrior", {"prior.copula"}),
    ("def f():\n    from .declarations.targets import load_targets", {"declarations.targets"}),
])
def test_the_import_reader_sees_every_kind_of_import(tmp_path, monkeypatch, source, expected):
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    path = tmp_path / "module.py"
    path.write_text(source)
    assert imports_of(path) == expected


def test_the_cycle_check_finds_a_cycle(monkeypatch):
    monkeypatch.setattr(__import__(__name__), "GRAPH", {"a": {"b"}, "b": {"c"}, "c": {"a"}})
    with pytest.raises(AssertionError):
        test_no_import_cycle()


@pytest.mark.parametrize("check, graph", [
    ("test_no_lower_layer_imports_a_higher_one", {"core.tables": {"shapes.flat.steps"}, "shapes.flat.steps": set()}),
    ("test_no_record_shape_imports_another", {"shapes.households.output": {"shapes.flat.result"}, "shapes.flat.result": set()}),
    ("test_no_record_shape_imports_another", {"shapes.households.output": {"shapes.flat"}, "shapes.flat": set()}),
    ("test_backends_know_nothing_of_statistics_or_the_loop", {"llm.cache": {"core.tables"}, "core.tables": set()}),
    ("test_every_module_is_in_a_layer_folder", {"loose_module": set()}),
])
def test_each_rule_finds_what_breaks_it(monkeypatch, check, graph):
    monkeypatch.setattr(__import__(__name__), "GRAPH", graph)
    with pytest.raises(AssertionError):
        globals()[check]()


def test_every_record_shape_declares_its_kind_and_levels_and_is_registered():
    import importlib

    from llmsynthor.cli.registry import SHAPES
    from llmsynthor.core.levels import Level, chain

    shapes = sorted(p.name for p in (PACKAGE / "shapes").iterdir() if (p / "__init__.py").is_file())
    assert {"flat", "households"} <= set(shapes)
    for name in shapes:
        shape = importlib.import_module(f"llmsynthor.shapes.{name}")
        assert all(isinstance(level, Level) for level in shape.LEVELS) and chain(*shape.LEVELS) == tuple(shape.LEVELS)
        assert shape.KIND in SHAPES and SHAPES[shape.KIND].KIND == shape.KIND, f"shapes/{name} has no commands in cli.registry.SHAPES"
