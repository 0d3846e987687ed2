"""The house's arrows point one way: no import cycle, no lower layer importing a higher one.

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a cycle hidden from
the interpreter is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "llmsynthor"

# low to high; a module may import modules of its own layer or of lower ones
LAYERS = [
    ("foundations", {"errors", "metrics", "schema", "urls", "memory"}),
    ("declarations", {"kinds", "spec", "tables", "spec_format", "households.spec", "households.spec_format"}),
    ("statistics", {"consistency", "statistics", "discrepancy", "within_bin", "rules", "records", "checkpoint"}),
    ("algorithms over records, no LLM", {"targets", "allocation", "calibration", "replacement", "evaluation", "datasets", "tempering", "joint",
                                         "households.controls", "households.balance", "households.candidates",
                                         "households.constraints", "households.evaluation"}),
    ("LLM backends", {"llm", "llm.base", "llm.models", "llm.embedded", "llm.llama_batch", "llm.openai_compat", "llm.cache",
                       "llm.none", "llm.threads"}),
    ("what the LLM is asked and what its answers become", {"prompts", "copula", "focus", "proposals", "suggest", "households.compose"}),
    ("the loop's parts", {"pool", "requesting", "steps", "finish", "result"}),
    ("the loop", {"synthesizer", "households.synthesizer"}),
    ("outputs and the short path", {"api", "output", "report", "households.output", "households.report"}),
    ("the command and the package", {"cli", "cli.__main__", "cli.app", "cli.common", "cli.options", "cli.registry", "cli.flat", "cli.households",
                                      "__init__", "households"}),
]
LAYER_OF = {module: i for i, (_, modules) in enumerate(LAYERS) for module in modules}
LLM_BACKENDS = {m for m in LAYER_OF if m == "llm" or m.startswith("llm.")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)


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
            if node.module is None or target in LAYER_OF or not target:
                found.update(n for n in names if n in LAYER_OF)
            if target in LAYER_OF and not (node.module is None and all(n in LAYER_OF for n in names)):
                found.add(target)  # `from . import flat` imports the submodule, not the package's __init__
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmsynthor"):
            target = node.module.removeprefix("llmsynthor").lstrip(".") or "__init__"
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("llmsynthor.") for a in node.names if a.name.startswith("llmsynthor."))
    found.discard(name)
    return found


GRAPH = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer():
    assert sorted(set(GRAPH) - set(LAYER_OF)) == [], "place new modules in LAYERS"


def test_no_lower_layer_imports_a_higher_one():
    wrong = [f"{m} ({LAYERS[LAYER_OF[m]][0]}) imports {d} ({LAYERS[LAYER_OF[d]][0]})"
             for m, deps in GRAPH.items() for d in deps if LAYER_OF[d] > LAYER_OF[m]]
    assert wrong == []


def test_backends_know_nothing_of_statistics_or_the_loop():
    wrong = [f"{m} imports {d}" for m in LLM_BACKENDS for d in GRAPH.get(m, ()) if d not in LLM_BACKENDS | {"errors", "urls"}]
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
    ("from .tables import Targets", {"tables"}),
    ("from . import checkpoint, prompts", {"checkpoint", "prompts"}),
    ("from .llm.base import LLMBackend", {"llm.base"}),
    ("if TYPE_CHECKING:\n    from .copula import PairwisePrior", {"copula"}),
    ("def f():\n    from .targets import load_targets", {"targets"}),
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
