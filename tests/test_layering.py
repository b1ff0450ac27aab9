"""Layering without circles (issue 16): no cycle among designspace's module imports, function-level imports
included (imports under ``if TYPE_CHECKING:`` never run and are left out). The implicit import of a parent
package (``designspace.blocks`` when ``designspace.blocks.mbconv`` is imported) is not an edge: a package's
``__init__`` importing its own submodules is its public face."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "designspace"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for stmt in block.body for n in ast.walk(stmt)}  # annotations only: never run
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # ``import designspace.blocks.registry as r`` -> the module itself
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name:
                found.add(t)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    mods = _modules()
    graph = {name: {t for t in _imports(name, path, set(mods)) if not name.startswith(t + ".")}
             for name, path in mods.items()}
    assert _cycles(graph) == []


def test_the_checker_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: The layers docs/architecture.md states, lowest first: a module imports only from its own layer or lower ones.
#: A module is in the layer of the longest name here that is it or a package holding it.
LAYERS = (
    ("designspace._yaml", "designspace.exceptions", "designspace.safe_files", "designspace.redact",
     "designspace.interrupts"),
    ("designspace.blocks",),
    ("designspace.plan", "designspace.arch"),
    ("designspace.zoo", "designspace.evaluate.counts.analytic"),
    ("designspace.resources",),
    ("designspace.network",),
    # evaluate's rooms, in the order docs/architecture.md states
    ("designspace.evaluate.cache", "designspace.evaluate.identity", "designspace.evaluate.fitting",
     "designspace.evaluate.points", "designspace.evaluate.latency_estimate"),
    ("designspace.evaluate.measure",),
    ("designspace.evaluate.devices", "designspace.evaluate.accuracy"),
    ("designspace.evaluate",),  # traced counting, the zoo report, Core ML export
    ("designspace.evaluate.table",),
    ("designspace.evaluate.sources",),
    ("designspace.evaluate.evaluation",),
    ("designspace.space",),
    ("designspace.results", "designspace.pareto", "designspace.search", "designspace.export", "designspace.train",
     "designspace.recipes", "designspace.table_build", "designspace.timm_compat"),
    ("designspace.analysis",),
    ("designspace.app", "designspace.cli", "designspace"),
)


def _layer(module: str) -> int:
    best = max(((len(name), i) for i, names in enumerate(LAYERS) for name in names
                if module == name or module.startswith(name + ".")), default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and to docs/architecture.md's layering"
    return best[1]


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets if _layer(t) > _layer(m))


def test_imports_follow_the_documented_layers() -> None:
    mods = _modules()
    graph = {name: {t for t in _imports(name, path, set(mods)) if not name.startswith(t + ".")}
             for name, path in mods.items()}
    assert _upward(graph) == []


def test_the_layer_checker_finds_an_upward_import() -> None:
    assert _upward({"designspace.evaluate.table.entries": {"designspace.space.match"},
                    "designspace.space.match": {"designspace.evaluate.counts.analytic"}}) == [
        "designspace.evaluate.table.entries -> designspace.space.match"]
    # within evaluate: the measurement may not reach up into the table, the table may use the measurement
    assert _upward({"designspace.evaluate.measure.timing": {"designspace.evaluate.table.term"},
                    "designspace.evaluate.table.term": {"designspace.evaluate.measure.latency"}}) == [
        "designspace.evaluate.measure.timing -> designspace.evaluate.table.term"]


#: the parts of ``evaluate`` the search may use: its latency through one interface (``sources``, whose figures are
#: ``latency_estimate``'s), and the cache, counts and accuracy estimates; never the table's, the measurement's or
#: the devices' internals
SEARCH_MAY_IMPORT = {"designspace.evaluate.sources", "designspace.evaluate.latency_estimate",
                     "designspace.evaluate.cache", "designspace.evaluate.counts.analytic",
                     "designspace.evaluate.identity", "designspace.evaluate.accuracy.estimate",
                     "designspace.evaluate.accuracy.proxies", "designspace.evaluate.accuracy.top1"}


def _search_reaches(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith("designspace.search")
                  for t in targets if t.startswith("designspace.evaluate") and t not in SEARCH_MAY_IMPORT)


def test_the_search_imports_one_latency_interface() -> None:
    mods = _modules()
    graph = {name: _imports(name, path, set(mods)) for name, path in mods.items()}
    assert _search_reaches(graph) == []


def test_the_search_check_finds_a_table_internal() -> None:
    assert _search_reaches({"designspace.search.runner": {"designspace.evaluate.table.entries",
                                                          "designspace.evaluate.sources"}}) == [
        "designspace.search.runner -> designspace.evaluate.table.entries"]
