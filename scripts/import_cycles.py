"""Print the import cycles among stockpred's modules and the upward imports from a library
package (data, features, models, evaluation, plots) into stages or cli; exit 1 if any.

Reads the imports as written (top level, inside functions and under ``if TYPE_CHECKING:``
alike: an annotation-only import still ties the two modules' designs), without importing
anything.
Run: python scripts/import_cycles.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "stockpred"
LIBRARIES = ("data", "features", "models", "evaluation", "plots")
ABOVE = ("stockpred.stages", "stockpred.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imports(path, known) - {name} for name, path in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in edges.items() for b in targets
                  if a.split(".")[1:2] and a.split(".")[1] in LIBRARIES
                  and b.startswith(ABOVE))


def main() -> int:
    edges = graph()
    found, ups = cycles(edges), upward(edges)
    for component in found:
        print("cycle: " + " -> ".join(component))
    for a, b in ups:
        print(f"upward import: {a} -> {b}")
    print(f"{len(edges)} modules, {len(found)} cycles, {len(ups)} upward imports")
    return 1 if found or ups else 0


if __name__ == "__main__":
    sys.exit(main())
