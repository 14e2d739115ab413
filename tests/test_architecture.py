"""The package's shape: no import cycle at any depth, layers import downward, small modules, and
every name imported from the module that defines it (no re-export shims).

Every module under ``src/mosaic_it`` is parsed with :mod:`ast` (nothing is imported), and every
``import mosaic_it...``, ``from mosaic_it... import`` and relative import is an edge: at module
level, inside a function, under ``if TYPE_CHECKING:``, all alike. An import moved into a function
is still a dependency, so a cycle through one is still a cycle. (A package whose ``__init__``
imports its own modules, a registry of commands or strategies, is no cycle: its modules do not
import it back.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = "mosaic_it"
REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src" / PACKAGE

# a module over this many lines does more than one thing
MAX_LINES = 450

# the layers: the first name below mosaic_it (a subpackage, or a top-level module)
LAYERS = sorted(
    {p.relative_to(SOURCE).parts[0].removesuffix(".py") for p in SOURCE.rglob("*.py")}
    - {"__init__", "__main__"}
)
# (importer, imported) pairs of layers that must not occur
FORBIDDEN_LAYERS = [
    # the budget counts tokens of texts: no records' formats, no method, no grouping
    *(("budget", layer) for layer in ("io", "method", "engine", "verifier", "rewards", "hf")),
    ("method", "engine"),
    ("method", "verifier"),
    ("verifier", "engine"),
    ("verifier", "io"),
    # the command line is the top: nothing imports it; the commands' domain code (apps) and
    # the executors are imported by the command line alone
    *((layer, "cli") for layer in LAYERS if layer != "cli"),
    *((layer, "apps") for layer in LAYERS if layer not in ("cli", "apps")),
    *((layer, "executors") for layer in LAYERS if layer not in ("cli", "executors")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def from_target(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` statement reads, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def package_of(path: Path) -> str:
    """The package relative imports in ``path`` start from ("" outside the package)."""
    if not path.is_relative_to(SOURCE):
        return ""
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def resolve(dotted: str, known: set[str]) -> str:
    """The longest known module that ``dotted`` names (a name inside a module resolves to it)."""
    while dotted not in known and "." in dotted:
        dotted = dotted.rpartition(".")[0]
    return dotted


def imported(path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The package's modules that ``path`` imports anywhere in its body, with the line of each."""
    package = package_of(path)
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield resolve(alias.name, known), node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = from_target(node, package)
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                # `from package import module` names a module; `from module import name` does not
                child = f"{target}.{alias.name}"
                yield (child if child in known else resolve(target, known)), node.lineno


@cache
def graph() -> dict[str, dict[str, int]]:
    """Each module's imports of the package's modules, with the line of the first."""
    found = modules()
    known = set(found)
    edges: dict[str, dict[str, int]] = {name: {} for name in found}
    for name, path in found.items():
        for target, line in imported(path, known):
            # importing the module's own package (or itself) is no dependency between two
            if target != name and not name.startswith(target + "."):
                edges[name].setdefault(target, line)
    return edges


def find_cycle(edges: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle as a path of modules (its first module again at its end), or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(edges[node]):
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done and (cycle := visit(nxt)):
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for node in sorted(edges):
        if node not in done and (cycle := visit(node)):
            return cycle
    return None


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def top_level_names(tree: ast.Module) -> set[str]:
    """The names a module binds itself at its top level (not those it imports)."""
    names: set[str] = set()
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    todo.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return names


def test_the_graph_sees_imports_in_functions_and_type_checking_blocks():
    edges = graph()
    assert len(edges) > 100
    assert "mosaic_it.records" in edges["mosaic_it.io.readers"]  # module level
    assert "mosaic_it.records" in edges["mosaic_it.method.strategies.base"]  # TYPE_CHECKING
    assert "mosaic_it.hub" in edges["mosaic_it.apps.model_source"]  # inside a function
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None


def test_no_import_cycle():
    edges = graph()
    cycle = find_cycle(edges)
    if cycle:
        steps = " -> ".join(
            f"{a} (line {edges[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)
        )
        pytest.fail(f"import cycle: {steps} -> {cycle[-1]}")


@pytest.mark.parametrize(("importer", "imported_layer"), FORBIDDEN_LAYERS)
def test_layers_import_downward(importer: str, imported_layer: str):
    wrong = [
        f"{name}:{line} imports {target}"
        for name, targets in graph().items()
        if layer(name) == importer
        for target, line in targets.items()
        if layer(target) == imported_layer
    ]
    assert not wrong, f"{importer} must not import {imported_layer}: " + "; ".join(wrong)


def test_no_module_is_over_the_line_limit():
    too_long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def test_no_all_lists_a_name_defined_elsewhere():
    """``__all__`` names what a module defines; the root package's lists its API and is checked
    against where each name is defined (below)."""
    shims = []
    for name, path in modules().items():
        if name == PACKAGE:
            continue
        tree = parsed(path)
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                and isinstance(node.value, ast.List | ast.Tuple)
            ):
                listed = {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
                if foreign := sorted(listed - top_level_names(tree)):
                    shims.append(f"{name}.__all__ lists names defined elsewhere: {foreign}")
    assert not shims, "\n".join(shims)


def test_every_name_is_imported_from_the_module_that_defines_it():
    """In the package, its tests, benchmarks and scripts: no module serves as a shim for
    another's names (the name would have two homes, and a shim is where cycles hide)."""
    found = modules()
    defined = {name: top_level_names(parsed(path)) for name, path in found.items()}
    others = ("tests", "benchmarks", "scripts", "docs")
    files = [*found.values(), *(p for d in others for p in sorted((REPO / d).rglob("*.py")))]
    wrong = []
    for path in files:
        package = package_of(path)
        for node in ast.walk(parsed(path)):
            if not isinstance(node, ast.ImportFrom) or (node.level and not package):
                continue
            target = from_target(node, package)
            if target.startswith(PACKAGE + ".") and target not in found:
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno} imports {target}: no module")
                continue
            if target not in found or target == PACKAGE:
                continue  # another package's, or the root's API
            for alias in node.names:
                if f"{target}.{alias.name}" not in found and alias.name not in defined[target]:
                    where = path.relative_to(REPO)
                    wrong.append(f"{where}:{node.lineno} imports {alias.name} through {target}")
    assert not wrong, "\n".join(wrong)


def test_the_root_package_names_each_name_where_it_is_defined():
    tree = parsed(SOURCE / "__init__.py")
    homes = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "_HOMES" for t in node.targets)
    )
    for module, names in homes.items():
        missing = set(names) - top_level_names(parsed(modules()[module]))
        assert not missing, f"{module} does not define {sorted(missing)}"
