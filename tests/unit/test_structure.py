"""The shape of `components/` and `llmops/`: imports run one way, and functions stay short.

Parses every module with `ast` (imports at any depth, function-level ones too, since
those are how a cycle hides) and resolves each import to the project module it
names; `if TYPE_CHECKING:` blocks count as well, because a type-only circle is
still a circle a reader has to hold in their head.
Proves: no cycle among the project's modules, the capability modules never import
a target builder's module back, the resolver sees the known edges (so an empty
graph cannot pass), and no function in `components/` runs past 60 lines except the
few named with their reason.
Imports done by string (`importlib.import_module(name)`, the CLI's command table) count
too: in a module that uses importlib, a string constant naming a project module is an import.
Cannot prove: module names assembled at run time; the project builds none.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("components", "llmops")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` refers to (a module, or the package holding a name)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        source = path.read_text()
        by_name = "importlib" in source
        for node in ast.walk(ast.parse(source, str(path))):
            targets: list[str] = []
            if by_name and isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules:
                targets = [node.value]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import mod` imports the submodule; `from mod import name` the module.
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for target in targets:
                found = _resolve(target, modules)
                if found is not None and found != module:
                    graph[module].add(found)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, …, a], or None (iterative DFS with colours)."""
    colour: dict[str, int] = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        colour[start] = 1
        while stack:
            node, pending = stack[-1]
            if not pending:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = pending.pop(0)
            if colour[nxt] == 1:
                return [*path[path.index(nxt) :], nxt]
            if colour[nxt] == 0:
                colour[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_the_resolver_sees_the_project_edges() -> None:
    graph = import_graph()
    assert "components.platform" in graph and "llmops.settings" in graph
    assert "components.model_endpoint" in graph["components.platform"]
    assert "llmops.settings" in graph["components.context"]
    assert "llmops.experiments.cli" in graph["llmops.cli"]  # named in the command table, imported by name
    assert sum(len(v) for v in graph.values()) > 50


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_capability_modules_never_import_target_modules_back() -> None:
    """Builders import the capability's Args; the capability module picks a builder through the
    target package's registry, so no target module imports a capability module's class module."""
    graph = import_graph()
    for module, deps in graph.items():
        if module.startswith(("components.aws", "components.local")):
            back = {d for d in deps if d in CAPABILITY_MODULES}
            assert not back, f"{module} imports capability module(s) {sorted(back)}"


CAPABILITY_MODULES = {
    "components.gpu_cluster",
    "components.model_endpoint",
    "components.monitoring",
    "components.training_job",
    "components.drift_monitor",
    "components.platform",
}


# Functions in components/ allowed past MAX_FUNCTION_LINES, each with its reason.
LONG_FUNCTION_EXCEPTIONS = {
    # One SageMaker pipeline definition, step by step, in the SDK's own vocabulary.
    ("components/aws/sagemaker_sdk.py", "training_pipeline_definition"),
    # The training script that runs inside the container, not a component.
    ("components/aws/train/finetune.py", "main"),
}
MAX_FUNCTION_LINES = 60


def test_functions_in_components_stay_short() -> None:
    """A resource group is a child component, not a long function (the exceptions are named above)."""
    long: list[str] = []
    for path in sorted((ROOT / "components").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and (rel, node.name) not in LONG_FUNCTION_EXCEPTIONS:
                    long.append(f"{rel}:{node.lineno} {node.name}: {lines} lines")
    assert not long, "split into child components or helpers:\n" + "\n".join(long)
