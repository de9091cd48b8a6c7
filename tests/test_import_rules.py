"""The package's layering, read from its source: each stage imports only the stages before it (lazy imports
inside functions included), the portable core imports nothing else of vitprune, and no module imports itself
back through others."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "vitprune_export"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
#: the stages in the order the data goes through them; a stage may import those before it, never one after it
STAGES = [
    ("_compat", "errors", "portable"),
    ("files", "resources"),
    ("pruning",),
    ("record",),
    ("export",),
    ("tensorrt",),
    ("measure",),
    ("accuracy",),
    ("cli",),
]
LEVEL = {stage: level for level, stages in enumerate(STAGES) for stage in stages}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py")) if "data-files" not in path.parts}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """vitprune modules that ``name`` imports anywhere in its body (module level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target == PACKAGE or target.startswith(PACKAGE + "."))
    return found - {name}


def stage_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def test_every_module_belongs_to_a_stage():
    assert {stage_of(name) for name in modules()} - {None} == set(LEVEL)


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """``module → target`` wherever a stage imports a stage of its own level or a later one."""
    upward = []
    for name, targets in edges.items():
        stage = stage_of(name)
        if stage is None:  # the package's __init__: the lazy public API over every stage
            continue
        for target in targets:
            other = stage_of(target)  # None: the package itself (`from .. import __version__`)
            if other is not None and other != stage and LEVEL[other] >= LEVEL[stage]:
                upward.append(f"{name} → {target}")
    return upward


def find_cycles(edges: dict[str, set[str]]) -> list[str]:
    """One ``a → … → a`` per cycle found by a depth-first walk."""
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append(
                    " → ".join([*trail[trail.index(target) :], node, target] if target in trail else [node, target])
                )
            elif target not in state:
                visit(target, [*trail, node])
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [])
    return cycles


def test_no_stage_imports_a_later_one():
    assert upward_imports(graph()) == []


def test_the_portable_core_imports_nothing_else_of_vitprune():
    outside = [
        f"{name} → {target}"
        for name, targets in graph().items()
        if stage_of(name) == "portable"
        for target in targets
        if stage_of(target) != "portable"
    ]
    assert outside == []


def test_no_import_cycle():
    assert find_cycles(graph()) == []


def test_the_rules_catch_what_they_claim():
    """The parser sees lazy and relative imports, and the checks flag an upward import and a cycle."""
    edges = graph()
    assert f"{PACKAGE}.record" in edges[f"{PACKAGE}.measure.runners.torch_runner"]
    assert f"{PACKAGE}.pruning.methods.fused" in edges[f"{PACKAGE}.pruning.methods.tome"]
    assert not any(stage_of(target) == "export" for target in edges[f"{PACKAGE}.pruning.methods.tome"])
    assert f"{PACKAGE}.tensorrt.env" in edges[f"{PACKAGE}.measure.profile"]  # a lazy import inside a function
    methods, emit = f"{PACKAGE}.pruning.methods.tome", f"{PACKAGE}.export.ops.emit"
    assert upward_imports({methods: {emit}}) == [f"{methods} → {emit}"]
    assert upward_imports({emit: {methods}}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a → b → c → a"]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
